"""Paper-session latencies: decision latency with 1 and with 50 symbols, and time to protect.

    python bench/session_latency.py            # 3 sessions per case (1 and 50 symbols), 60 s each
    python bench/session_latency.py --quick    # 1 symbol only, one 20 s session, + time to protect

The 50-symbol case is not in --quick: its warm-up alone (50 symbols' REST history through the
connector and a first evaluation of every sensor on every timeframe) takes about a minute.

Decision latency is the engine's own figure (``casino_decision_latency_seconds``, the report's
``latency_s.decision``): a closed 1m candle received by the engine → its entry request handed
to the croupier, real time. Each session is a real ``python main.py run`` subprocess: the
simulated Binance on loopback at speed 120, the real connector and websockets, sensor worker
processes; a config that decides often (the tests' FAST_CONFIG) so that entries happen. The 50
symbols are a temporary folder of symlinks onto the 7 recorded futures-2023 symbols.

Time to protect (first entry fill → stop acknowledged) comes from ``bench/croupier.py``
(which places brackets through the connector on loopback), run and relayed here.

Figures: p50 / p99 per session, then the median over sessions, with the number of decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from replay import DATA_DIR, DATASET, symlink_dataset  # noqa: E402
from tests.session_helpers import FAST_CONFIG  # noqa: E402


def emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(orjson.dumps({"bench": "session_latency", "metric": metric, "value": round(value, 4), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def session(root: Path, data_dir: Path, dataset: str, symbols: list[str], seconds: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(dir=root))
    config = FAST_CONFIG.replace('symbols = ["BTCUSDT", "ETHUSDT"]', f"symbols = {json.dumps(symbols)}")
    config = config.replace('dataset = "futures-2023"', f'dataset = "{dataset}"')
    config = config.replace("max_positions = 2", f"max_positions = {len(symbols)}")
    (work / "casino.toml").write_text(config + '\n[metrics]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
    env["CASINO_DATA_DIR"] = str(data_dir)
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "run", "--config", "casino.toml", "--speed", "120",
                           "--duration", f"{seconds}s"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=seconds + 600)
    if proc.returncode != 0:
        raise SystemExit(f"session failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(next((work / "sessions").iterdir()).joinpath("report.json").read_text())
    return report["latency_s"].get("decision") or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short session per case (under a minute each)")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, fifty = symlink_dataset(root, 50)
        cases = [("1sym", DATA_DIR, DATASET, ["BTCUSDT"], 20 if args.quick else 60)]
        if not args.quick:
            cases.append(("50sym", root, folder.name, fifty, 60))
        for label, data_dir, dataset, symbols, seconds in cases:
            stats = [session(root, data_dir, dataset, symbols, seconds) for _ in range(runs)]
            stats = [s for s in stats if s.get("count")]
            if not stats:
                print(f"# {label}: no entry was decided; no decision latency", file=sys.stderr)
                continue
            for q in ("p50", "p99"):
                emit(f"decision_{label}_{q}_ms", statistics.median(s[q] for s in stats) * 1000, "ms", len(stats))
            emit(f"decision_{label}_count", statistics.median(s["count"] for s in stats), "decisions", len(stats))
    croupier = subprocess.run([sys.executable, str(REPO / "bench" / "croupier.py"), *(["--quick"] if args.quick else [])],
                              capture_output=True, text=True, timeout=600)
    for line in croupier.stdout.splitlines():
        row = json.loads(line)
        emit(f"protect_{row['metric']}", row["value"], row["unit"], row["runs"])
    emit("load_average_1m", os.getloadavg()[0], "load", 1)


if __name__ == "__main__":
    main()
