"""Replay throughput: 1m bars per second through the whole engine (`python main.py replay`'s path).

    python bench/replay.py             # 3 runs per case, longer windows
    python bench/replay.py --quick     # 2 runs per case, short windows (well under a minute)
    python bench/replay.py --profile   # also: cProfile of the engine process, top functions

Cases: (a) a minimal EMA-cross strategy (the ``ema_cross`` voter and one context sensor,
``htf_trend``) and (b) the default ensemble (every registered sensor), each on 1 symbol and on
50 symbols. The recorded futures-2023 folder has 7 symbols; the 50-symbol case runs on a
temporary folder of symlinks (S00USDT-1m.csv.gz … → the real files, never copied).

Measured: the trading phase only (``Engine.run``: recorded bars played → sensors → player →
croupier on the in-process simulator), not start-up and warm-up, which are reported apart.
The figure is bars processed / wall seconds of that phase, the median of the runs. The
engine runs in this process, the sensors in their worker processes, as in a real replay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.loader import load_settings  # noqa: E402
from config.secrets import Secrets  # noqa: E402
from core.engine import Engine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CASINO_DATA_DIR", REPO.parent / "shared" / "data"))
DATASET = "futures-2023"
REAL = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
SUFFIXES = ["-1m.csv.gz", "-8h-funding.csv.gz", "-8h-markprice.csv.gz"]

MINIMAL = {"sensors.enabled": ["ema_cross", "htf_trend"], "player.min_voters": 1}
DEFAULT: dict[str, Any] = {}


def emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(orjson.dumps({"bench": "replay", "metric": metric, "value": round(value, 3), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def symlink_dataset(root: Path, n: int) -> tuple[Path, list[str]]:
    """``n`` symbols S00USDT … named onto the real files in turn (symlinks: nothing is copied)."""
    folder = root / "bench-symbols"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"S{i:02d}USDT"
        real = REAL[i % len(REAL)]
        for suffix in SUFFIXES:
            target = DATA_DIR / DATASET / f"{real}{suffix}"
            if target.exists():
                (folder / f"{name}{suffix}").symlink_to(target)
        names.append(name)
    return folder, names


class Timing:
    """Wraps ``Engine.run`` to time the trading phase alone."""

    def __init__(self) -> None:
        self.run_s = 0.0
        self.bars = 0
        self.started = 0.0

    def install(self, profile: cProfile.Profile | None) -> Any:
        original = Engine.run
        timing = self

        async def timed_run(engine: Engine) -> str:
            before = engine.bars_processed
            t0 = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                return await original(engine)
            finally:
                if profile is not None:
                    profile.disable()
                timing.run_s = time.perf_counter() - t0
                timing.bars = engine.bars_processed - before

        Engine.run = timed_run  # type: ignore[method-assign]
        return original


def run_once(root: Path, dataset: str, symbols: list[str], minutes: int, extra: dict[str, Any],
             profile: cProfile.Profile | None = None) -> tuple[float, int, float]:
    """(trading seconds, bars, whole session seconds) of one replay."""
    from main import compose_and_run

    sessions = Path(tempfile.mkdtemp(dir=root))
    settings = load_settings(None, overrides={
        "session.mode": "replay", "session.symbols": symbols, "session.data_dir": root if dataset != DATASET else DATA_DIR,
        "session.dataset": dataset, "session.sessions_dir": sessions, "session.log_level": "WARNING",
        "session.duration_s": minutes * 60.0, "metrics.enabled": False, "sensors.workers": 2, **extra,
    })
    timing = Timing()
    original = timing.install(profile)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            code = asyncio.run(compose_and_run(settings, Secrets(), duration_s=minutes * 60.0, progress=False))
    finally:
        Engine.run = original  # type: ignore[method-assign]
        logging.getLogger().handlers.clear()
    if code != 0:
        raise SystemExit(f"replay exited {code}; see {sessions}")
    return timing.run_s, timing.bars, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows, 2 runs (under a minute)")
    parser.add_argument("--profile", action="store_true", help="cProfile the engine process of one run per case")
    args = parser.parse_args()
    runs = 2 if args.quick else 3
    # simulated minutes per case: (1 symbol, 50 symbols); quick: one run of each 50-symbol case
    # (its start-up — 50 symbols' warm-up through the sensors — alone takes ~20 s)
    minutes = {"minimal": (300, 10), "default": (120, 4)} if args.quick else \
        {"minimal": (6000, 120), "default": (1440, 40)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, fifty = symlink_dataset(root, 50)
        for case, extra in (("minimal", MINIMAL), ("default", DEFAULT)):
            for label, dataset, symbols, mins in (("1sym", DATASET, ["BTCUSDT"], minutes[case][0]),
                                                  ("50sym", folder.name, fifty, minutes[case][1])):
                rates, starts = [], []
                n = 1 if args.quick and label == "50sym" else runs
                for _ in range(n):
                    run_s, bars, total_s = run_once(root, dataset, symbols, mins, extra)
                    rates.append(bars / run_s)
                    starts.append(total_s - run_s)
                emit(f"{case}_{label}_bars_per_s", statistics.median(rates), "bars/s", n)
                emit(f"{case}_{label}_startup_s", statistics.median(starts), "s", n)
                if args.profile:
                    prof = cProfile.Profile()
                    run_once(root, dataset, symbols, mins, extra, prof)
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
                    print(f"# profile {case}_{label} (engine process, by own time)\n{out.getvalue()}",
                          file=sys.stderr)
    print(orjson.dumps({"bench": "replay", "metric": "load_average_1m", "value": os.getloadavg()[0],
                        "unit": "load", "runs": 1}).decode())


if __name__ == "__main__":
    main()
