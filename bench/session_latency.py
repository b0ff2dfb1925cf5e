"""Paper-session latencies: decision latency with 1 and with 50 symbols, and time to protect.

    python bench/session_latency.py            # 3 sessions per case (1 and 50 symbols), 60 s each
    python bench/session_latency.py --quick    # 1 symbol only, one 30 s session, + time to protect

The 50-symbol case is not in --quick: its warm-up alone (50 symbols' REST history through the
connector and a first evaluation of every sensor on every timeframe) takes about a minute.

Decision latency is the engine's own figure (``casino_decision_latency_seconds``, the report's
``latency_s.decision``): a closed 1m candle's frame read off the market socket → its entry
request handed to the croupier, real time. The report splits it: ``decision_sensors`` (the wait
for the sensor pool, another component's work) and ``decision_engine`` (the rest). ``bar`` and
``bar_engine`` are the same measure up to the player's verdict for EVERY live bar, decided or
skipped (many more samples than entries). With several symbols a burst's entries are
registered as each symbol is decided and leave together once all are decided, after one
snapshot: ``entry_sent`` is the candle → request-on-the-wire time. Each session is a real ``python main.py run``
subprocess: the simulated Binance on loopback at speed 120 (50 symbols: 20, ``--fifty-speed``), the real connector and websockets,
sensor worker processes; a config that decides often (the tests' FAST_CONFIG, with narrower
TP/SL so brackets close and new entries follow). The 50 symbols are a temporary folder of
symlinks onto the 7 recorded futures-2023 symbols.

Time to protect (first entry fill applied → stop acknowledged, real time) is measured inside
the same sessions (``casino_time_to_protect_seconds``, the report's ``latency_s.protect``) and,
apart from any session, by ``bench/croupier.py`` (brackets placed through the connector on
loopback), run and relayed here.

Figures: p50 / p99 per session, then the median over sessions, with the sample counts.
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

# Brackets that close within minutes of simulated time, so a short session holds several entries.
BENCH_PLAYER = """tp_min_fraction = 0.001
tp_max_fraction = 0.0015
sl_min_fraction = 0.001
sl_max_fraction = 0.0015
"""
FIGURES = ("decision", "decision_engine", "decision_sensors", "entry_sent", "bar", "bar_engine", "protect")


def emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(orjson.dumps({"bench": "session_latency", "metric": metric, "value": round(value, 4), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def session(root: Path, data_dir: Path, dataset: str, symbols: list[str], seconds: int,
            speed: float = 120) -> dict[str, dict[str, float]]:
    work = Path(tempfile.mkdtemp(dir=root))
    config = FAST_CONFIG.replace('symbols = ["BTCUSDT", "ETHUSDT"]', f"symbols = {json.dumps(symbols)}")
    narrow = config.replace("tp_min_fraction = 0.002\ntp_max_fraction = 0.004\nsl_min_fraction = 0.002\n"
                            "sl_max_fraction = 0.004\n", BENCH_PLAYER)
    if narrow == config:
        raise SystemExit("FAST_CONFIG's TP/SL lines changed: update BENCH_PLAYER's replacement")
    config = narrow
    config = config.replace('dataset = "futures-2023"', f'dataset = "{dataset}"')
    config = config.replace("max_positions = 2", f"max_positions = {len(symbols)}")
    (work / "casino.toml").write_text(config + '\n[metrics]\nenabled = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
    env["CASINO_DATA_DIR"] = str(data_dir)
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "run", "--config", "casino.toml", "--speed", f"{speed:g}",
                           "--duration", f"{seconds}s"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=seconds + 600)
    if proc.returncode != 0:
        raise SystemExit(f"session failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(next((work / "sessions").iterdir()).joinpath("report.json").read_text())
    return {name: report["latency_s"].get(name) or {} for name in FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short session per case (under a minute each)")
    parser.add_argument("--fifty", action="store_true", help="with --quick: add one 50-symbol session (minutes)")
    parser.add_argument("--fifty-speed", type=float, default=20.0,
                        help="speed of the 50-symbol sessions (default 20: at 120 the in-process simulator replays 50 "
                             "symbols' marks and klines so fast that a 2-core machine falls behind, and the figures "
                             "measure the backlog: bar p50 ~350 ms at 120 against ~23 ms at 20)")
    parser.add_argument("--runs", type=int, help="sessions per case (default: 3; --quick: 1)")
    parser.add_argument("--seconds", type=int, help="length of each 1-symbol session (default 60; --quick: 30)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, fifty = symlink_dataset(root, 50)
        cases = [("1sym", DATA_DIR, DATASET, ["BTCUSDT"], args.seconds or (30 if args.quick else 60))]
        if not args.quick or args.fifty:
            cases.append(("50sym", root, folder.name, fifty, 60 if args.quick else 120))
        for label, data_dir, dataset, symbols, seconds in cases:
            speed = args.fifty_speed if label == "50sym" else 120.0
            sessions = [session(root, data_dir, dataset, symbols, seconds, speed) for _ in range(runs)]
            for name in FIGURES:
                stats = [s[name] for s in sessions if s[name].get("count")]
                if not stats:
                    print(f"# {label}: no {name} sample in any session", file=sys.stderr)
                    continue
                for q in ("p50", "p99"):
                    emit(f"{name}_{label}_{q}_ms", statistics.median(s[q] for s in stats) * 1000, "ms", len(stats))
                emit(f"{name}_{label}_count", statistics.median(s["count"] for s in stats), "samples", len(stats))
    croupier = subprocess.run([sys.executable, str(REPO / "bench" / "croupier.py"), *(["--quick"] if args.quick else [])],
                              capture_output=True, text=True, timeout=600)
    for line in croupier.stdout.splitlines():
        row = json.loads(line)
        emit(f"protect_{row['metric']}", row["value"], row["unit"], row["runs"])
    emit("load_average_1m", os.getloadavg()[0], "load", 1)


if __name__ == "__main__":
    main()
