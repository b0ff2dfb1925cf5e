"""Memory soak: peak RSS and RSS growth over a 48 h-equivalent replay (2,880 bars × 50 symbols).

    python bench/soak.py            # 2,880 bars × 50 symbols, default sensor ensemble
    python bench/soak.py --quick    # 240 bars × 50 symbols, minimal EMA-cross strategy
    python bench/soak.py --bars 1440  # a mid-size run (24 h-equivalent) on a busy machine

The replay runs as a real ``python main.py replay`` subprocess on a temporary folder of 50
symlinks onto the recorded futures-2023 files. Every 0.5 s the resident set of the engine
process and of every descendant (the sensor workers) is read from /proc. Reported:
- peak RSS of the engine and of engine + workers;
- growth after warm-up: the RSS at the end versus the RSS when the trading phase had done 10 %
  of its bars (warm-up, imports and the first allocations of every ring are behind by then), in
  percent — target ≤ 5 %.
Progress is read from the engine's log (``bars_processed`` is not exported on a replay's
stdout): the trading phase runs from "engine ready" to "stop requested" (the data's end), and
the warm-up mark is its sample at 10 %. Samples of the shutdown that follows (workers exiting,
the final snapshot and report) are not part of the growth figure, only of the peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from replay import MINIMAL, symlink_dataset  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def emit(metric: str, value: float, unit: str, runs: int = 1) -> None:
    print(orjson.dumps({"bench": "soak", "metric": metric, "value": round(value, 2), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out.append(int(k))
            todo.append(int(k))
    return out


def toml_value(v: object) -> str:
    return json.dumps(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="240 bars × 50 symbols, minimal strategy")
    parser.add_argument("--bars", type=int, help="1m bars per symbol (default 2880, 240 with --quick)")
    args = parser.parse_args()
    bars = args.bars or (240 if args.quick else 2880)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, fifty = symlink_dataset(root, 50)
        lines = ["[session]", f"symbols = {toml_value(fifty)}", f'dataset = "{folder.name}"', 'log_format = "json"',
                 "[metrics]", "enabled = false", "[sensors]", "workers = 2"]
        if args.quick:
            lines[-1:-1] = [f"enabled = {toml_value(MINIMAL['sensors.enabled'])}"]
            lines += ["[player]", f"min_voters = {MINIMAL['player.min_voters']}"]
        (root / "casino.toml").write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
        env["CASINO_DATA_DIR"] = str(root)
        proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), "replay", "--config", "casino.toml",
                                 "--duration", f"{bars}m"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, int, int, bool]] = []  # (t, engine, total, trading)
        ready = stopping = False
        while proc.poll() is None:
            engine = rss_bytes(proc.pid)
            total = engine + sum(rss_bytes(k) for k in descendants(proc.pid))
            if not stopping:
                logs = list((root / "sessions").glob("*/casino.log")) if (root / "sessions").exists() else []
                text = logs[0].read_text(errors="replace") if logs else ""
                ready = ready or "engine ready" in text
                stopping = "stop requested" in text
            samples.append((time.monotonic(), engine, total, ready and not stopping))
            time.sleep(0.5)
        if proc.returncode != 0:
            raise SystemExit(f"replay exited {proc.returncode}")
    trading = [s for s in samples if s[3]]
    if len(trading) < 4:
        raise SystemExit("the trading phase was too short to judge growth")
    mark = trading[len(trading) // 10]
    last = trading[-1]
    emit("peak_rss_engine_mb", max(s[1] for s in samples) / 2**20, "MB")
    emit("peak_rss_total_mb", max(s[2] for s in samples) / 2**20, "MB")
    emit("rss_growth_engine_pct", 100.0 * (last[1] - mark[1]) / mark[1], "%")
    emit("rss_growth_total_pct", 100.0 * (last[2] - mark[2]) / mark[2], "%")
    emit("trading_phase_s", last[0] - trading[0][0], "s")
    emit("bars", bars * len(fifty), "bars")
    emit("load_average_1m", os.getloadavg()[0], "load")


if __name__ == "__main__":
    main()
