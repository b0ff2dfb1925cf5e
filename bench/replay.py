"""Replay throughput: 1m bars per second, through the whole engine (`python main.py replay`)
and through the vectorised path (`python main.py replay --fast`).

    python bench/replay.py                 # both paths; engine: 3 runs per case, longer windows
    python bench/replay.py --quick         # the fast path on short windows, one run (under a minute)
    python bench/replay.py --quick --path both   # plus the engine on short windows (minutes: its
                                           # 50-symbol start-up alone takes ~50 s on a loaded machine)
    python bench/replay.py --path fast     # only the fast path (1 × 1 M and 50 × 20 k bars)
    python bench/replay.py --profile       # also: cProfile of the engine process, top functions
                                           # (fast path: one extra profiled run per case)

Cases: (a) a minimal EMA-cross strategy (the ``ema_cross`` voter and one context sensor,
``htf_trend``) and (b) the default ensemble (every registered sensor), each on 1 symbol and on
50 symbols. The recorded futures-2023 folder has 7 symbols; the 50-symbol case runs on a
temporary folder of symlinks (S00USDT-1m.csv.gz … → the real files, never copied).

Measured: the trading phase only (``Engine.run``: recorded bars played → sensors → player →
croupier on the in-process simulator), not start-up and warm-up, which are reported apart.
The figure is bars processed / wall seconds of that phase, the median of the runs. The
engine runs in this process, the sensors in their worker processes, as in a real replay.

Fast path (``fast_*`` metrics): the same cases on 1 symbol × 1 M bars and 50 symbols × 20 k
bars, both strategies (quick: 1 × 200 k and 50 × 4 k; the default ensemble on a tenth of that). The recorded
files hold ~64 k bars per symbol, so the 1 M-bar series is stitched from them: each real file
in turn, scaled so it opens where the previous one closed, rounded to BTCUSDT's tick, as one
in-memory ``BTCUSDT`` series (real moves, continuous prices). 50 × 20 k uses the 50
symbols S00USDT … (each one of the 7 real files) with
the replay window cut to the last 20 k bars. The daily loss limit and tracker.max_open_votes
are lifted (a losing month would halt, 50 symbols × every sensor overflow the open-vote bound;
the fast path refuses to approximate either). Measured: ``FastReplay`` on data
already in memory (``fast_data_load_s`` apart): signals, tracker, consensus, trades, report
record.
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

import numpy as np
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


def real_data() -> dict[str, Any]:
    """The recorded symbols' data (1m candles, funding, marks), loaded once."""
    from exchanges.sim.feed import load_symbol_data

    return {r: load_symbol_data(DATA_DIR / DATASET, r) for r in REAL}


def stitched_series(loaded: dict[str, Any], bars: int) -> Any:
    """One continuous ``BTCUSDT`` 1m series of ``bars`` bars from the real files (see the docstring)."""
    from core.history import CandleSeries
    from core.types import Timeframe

    t0 = 1_600_000_020_000 - 1_600_000_020_000 % 3_600_000
    price = 30_000.0
    cols: list[list[np.ndarray]] = [[], [], [], [], []]
    n = k = 0
    while n < bars:
        s = loaded[REAL[k % len(REAL)]].m1
        k += 1
        take = min(len(s), bars - n)
        scale = price / float(s.open[0])
        for col, x in zip(cols, (s.open, s.high, s.low, s.close), strict=False):
            col.append(np.round(x[:take] * scale, 1))
        cols[4].append(s.volume[:take])
        n += take
        price = float(cols[3][-1][-1])
    o, h, lo, c, v = (np.concatenate(col) for col in cols)
    return CandleSeries("BTCUSDT", Timeframe.M1, t0 + 60_000 * np.arange(bars, dtype=np.int64), o, h, lo, c, v)


def fast_once(venue: Any, symbols: list[str], extra: dict[str, Any],
              profile: cProfile.Profile | None = None) -> tuple[float, int, int]:
    """(replay seconds, bars, trades) of one fast replay on an already loaded venue."""
    from core.fast_replay import FastReplay

    settings = load_settings(None, overrides={
        "session.mode": "replay", "session.symbols": symbols, "session.log_level": "ERROR",
        # a month-long losing replay would reach the daily-loss halt, and 50 symbols × every sensor
        # keep more votes open than the tracker's bound (the engine would drop the oldest): the
        # fast path refuses to approximate either, so lift both — this measures throughput
        "risk.daily_loss_limit_fraction": 0.99, "tracker.max_open_votes": 10_000_000, **extra,
    })
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        fast = FastReplay(settings, "bench-fast", venue=venue)
        fast.run()
        record = fast.record("bench")
    finally:
        if profile is not None:
            profile.disable()
    return time.perf_counter() - t0, (fast.n_bars + 1) * len(symbols), len(record.trades)


def fast_venue(data: dict[str, Any], replay_bars: int) -> Any:
    """A fresh simulated venue on ``data`` whose replay window is the last ``replay_bars`` bars."""
    from config.settings import SimSettings
    from exchanges.sim.local import engine_config, venue_config
    from exchanges.sim.venue import Venue

    first = max(int(d.m1.open_time[0]) for d in data.values())
    last = min(int(d.m1.open_time[-1]) for d in data.values())
    sim = SimSettings()
    return Venue(data, engine_config(sim), venue_config(sim, intrabar_events=False),
                 start_ms=last - (replay_bars - 2) * 60_000 if replay_bars > 1 else first)


def bench_fast(quick: bool, profile: bool = False) -> None:
    from dataclasses import replace

    from exchanges.sim.feed import SymbolData

    logging.getLogger().setLevel(logging.ERROR)
    t0 = time.perf_counter()
    loaded = real_data()
    long_bars = 200_000 if quick else 1_000_000
    per_symbol = 4_000 if quick else 20_000
    long = stitched_series(loaded, long_bars + 7_200)
    emit("fast_data_load_s", time.perf_counter() - t0, "s", 1)
    fifty = {}
    for i in range(50):
        name = f"S{i:02d}USDT"
        d = loaded[REAL[i % len(REAL)]]
        fifty[name] = SymbolData(name, replace(d.m1, symbol=name), d.funding, d.mark_8h)
    # (the default ensemble at full size takes ~15 s and ~3 GB per run; --quick keeps it short)
    for case, extra, shrink in (("minimal", MINIMAL, 1), ("default", DEFAULT, 10 if quick else 1)):
        for label, data, bars in (
            ("1sym", {"BTCUSDT": SymbolData("BTCUSDT", long)}, long_bars // shrink),
            ("50sym", fifty, per_symbol // shrink),
        ):
            rates = []
            runs = 1 if quick else 3
            total = trades = 0
            for _ in range(runs):
                run_s, total, trades = fast_once(fast_venue(data, bars), list(data), extra)
                rates.append(total / run_s)
            emit(f"fast_{case}_{label}_bars_per_s", statistics.median(rates), "bars/s", runs)
            emit(f"fast_{case}_{label}_bars", total, "bars", runs)
            emit(f"fast_{case}_{label}_trades", trades, "trades", runs)
            if profile:
                prof = cProfile.Profile()
                fast_once(fast_venue(data, bars), list(data), extra, prof)
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
                print(f"# profile fast_{case}_{label} (by own time)\n{out.getvalue()}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows, 2 runs (under a minute)")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra run per case (engine process / fast path)")
    parser.add_argument("--path", choices=["engine", "fast", "both"],
                        help="which replay to measure (default: both; with --quick: fast)")
    args = parser.parse_args()
    args.path = args.path or ("fast" if args.quick else "both")
    runs = 2 if args.quick else 3
    # simulated minutes per case: (1 symbol, 50 symbols); quick: one run of each 50-symbol case
    # (its start-up — 50 symbols' warm-up through the sensors — alone takes ~20 s)
    minutes = {"minimal": (300, 10), "default": (120, 4)} if args.quick else \
        {"minimal": (6000, 120), "default": (1440, 40)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, fifty = symlink_dataset(root, 50)
        if args.path in ("fast", "both"):
            bench_fast(args.quick, args.profile)
        for case, extra in (() if args.path == "fast" else (("minimal", MINIMAL), ("default", DEFAULT))):
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
