"""Live-versus-batch parity over whole recorded histories (too long for the test suite).

The tests check parity on 2,500-bar slices. Over a whole history, batch mode's TA-Lib running
sums (SMA, STDDEV, BBANDS, A/D) carry rounding from bar 0 while a live window starts afresh,
so a sensor that compares two such values can flip at a tie. This audit finds every bar where
the two disagree, for every sensor, on every 1m/5m/1h file under ../shared/data:

1. batch once over the whole history (what replays use);
2. batch over overlapping chunks that start every ``STRIDE`` bars: a chunk's value at bar
   s + window - 1 is exactly the live value there, and later bars see a start as near as live
   does, so any start-dependence shows up as a chunk/full disagreement;
3. ``live_value`` (the live window itself) at every bar step 2 flags, every bar whose window
   holds a bar without trades or a run of unchanged closes (where recursive states stop
   settling), and every ``--step``-th bar: that decides what counts as a mismatch.

4. the production live path: the 1m histories of one recording fed bar by bar into the
   shared-memory rings (``core.market_data``) and evaluated as one burst of all symbols
   (``core.sensor_plan.evaluate_burst``: stacked, power-of-two scaled, the plan's shared
   windows) at every bar near a bar without trades and every ``--burst-step``-th bar.

Figures: bars checked live and mismatched bars (target 0), and the same for bursts
(symbol-bars). Each mismatch is printed on stderr with the sensor, file, bar and both values.

    python bench/parity_audit.py [--quick] [--sensor NAME ...] [--file PART ...] [--no-burst]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import SensorSettings  # noqa: E402
from core.history import find_data_dir, load_candles  # noqa: E402
from core.market_data import MarketData  # noqa: E402
from core.sensor_plan import build_plan, evaluate_burst  # noqa: E402
from core.types import Timeframe  # noqa: E402
from sensors.base import Bars, SensorSpec  # noqa: E402
from sensors.batch import keep_heap, live_value  # noqa: E402
from sensors.registry import all_sensors  # noqa: E402

BENCH = "parity_audit"
TOLERANCE = 1e-9
STRIDE = 1_000
LIVE_STEP = 29
BURST_STEP = 17
STILL_RUN = 5  # unchanged closes in a row that make a window worth checking bar by bar


def emit(metric: str, value: float, unit: str, runs: int = 1, **extra: object) -> None:
    print(json.dumps({"bench": BENCH, "metric": metric, "value": value, "unit": unit, "runs": runs, **extra}),
          flush=True)


def differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        return (nan_a != nan_b) | (~nan_a & ~nan_b & (np.abs(a - b) > TOLERANCE))


def suspects(spec: SensorSpec, bars: Bars, full: np.ndarray) -> set[int]:
    window = spec.window_bars()
    n = len(bars)
    found: set[int] = set()
    for start in range(0, max(1, n - window), STRIDE):
        end = min(n, start + window + 2 * STRIDE)
        chunk = spec.compute(Bars(*(col[start:end] for col in bars)))
        first = window - 1  # from here on the chunk is at least as long as a live window
        bad = np.flatnonzero(differs(chunk[first:], full[start + first:end]))
        found.update((bad + start + first).tolist())
    return found


def still_bars(bars: Bars) -> np.ndarray:
    """Bars without trades, and the last bar of every run of ``STILL_RUN`` unchanged closes."""
    unchanged = np.concatenate(([False], bars.close[1:] == bars.close[:-1])).astype(np.int64)
    runs = np.convolve(unchanged, np.ones(STILL_RUN, dtype=np.int64))[: len(unchanged)]
    return np.flatnonzero((bars.volume == 0) | (runs >= STILL_RUN))


def audit_file(path: Path, specs: dict[str, SensorSpec], rows: int | None, step: int) -> tuple[int, int]:
    series = load_candles(path)
    if rows is not None:
        series = series.slice(0, min(rows, len(series)))
    bars = Bars(series.open, series.high, series.low, series.close, series.volume)
    checked = mismatched = 0
    still = still_bars(bars)
    for name, spec in specs.items():
        full = spec.compute(bars)
        window = spec.window_bars()
        near_still = (still[:, None] + np.arange(window)[None, :]).ravel()
        candidates = suspects(spec, bars, full) | set(range(window - 1, len(bars), step)) | \
            set(near_still[near_still < len(bars)].tolist())
        for i in sorted(candidates):
            live = live_value(spec, spec.defaults, bars, i)
            checked += 1
            a, b = np.array([live]), full[i:i + 1]
            if differs(a, b)[0]:
                mismatched += 1
                print(f"MISMATCH {name} {path.parent.name}/{path.name} bar {i}: live {live!r} batch {full[i]!r}",
                      file=sys.stderr, flush=True)
    return checked, mismatched


def audit_bursts(files: list[Path], specs: dict[str, SensorSpec], rows: int | None, step: int) -> tuple[int, int]:
    """Step 4 of the module docstring: (symbol-bars checked, mismatched sensor readings)."""
    series = [load_candles(f) for f in files]
    n = min(len(s) for s in series)
    if rows is not None:
        n = min(n, rows)
    histories = [Bars(s.open[:n], s.high[:n], s.low[:n], s.close[:n], s.volume[:n]) for s in series]
    names = [f"S{k}USDT" for k in range(len(files))]  # one ring per file, whatever its symbol
    settings = SensorSettings(timeframes=["1m"], sensor_timeframes={name: ["1m"] for name in specs})
    plan = build_plan(settings, specs)
    sensors = plan.sensors_for(Timeframe.M1)
    batch = [np.array([specs[p.name].compute(h, dict(p.params)) for p in sensors]) for h in histories]
    marked = np.zeros(n, dtype=bool)
    for h in histories:  # every bar whose longest window holds a bar without trades
        for j in np.flatnonzero(h.volume == 0):
            marked[j:j + plan.max_window] = True
    marked[::step] = True
    md = MarketData(names, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    checked = bad = 0
    try:
        for i in range(n):
            for name, s in zip(names, series, strict=True):
                md.append_values(name, int(s.open_time[i]), s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i])
            if not marked[i]:
                continue
            rings = [md.ring(name, Timeframe.M1) for name in names]
            result = evaluate_burst(sensors, specs, rings, Timeframe.M1, [md.last_index(nm, Timeframe.M1)
                                                                          for nm in names])
            for k, expected in enumerate(batch):
                checked += 1
                wrong = np.flatnonzero(differs(result.signals[k], expected[:, i]))
                bad += len(wrong)
                for w in wrong:
                    print(f"MISMATCH burst {sensors[w].name} {files[k].parent.name}/{files[k].name} bar {i}: "
                          f"burst {result.signals[k, w]!r} batch {expected[w, i]!r}", file=sys.stderr, flush=True)
    finally:
        md.close()
    return checked, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 20,000 bars of three files")
    parser.add_argument("--sensor", action="append", help="only these sensors (repeatable)")
    parser.add_argument("--file", action="append", help="only files whose name contains this (repeatable)")
    parser.add_argument("--step", type=int, default=LIVE_STEP, help="check every STEP-th bar live (default %(default)s)")
    parser.add_argument("--burst-step", type=int, default=BURST_STEP,
                        help="evaluate a burst every BURST_STEP-th bar (default %(default)s)")
    parser.add_argument("--no-burst", action="store_true", help="skip step 4 (bursts through the rings)")
    parser.add_argument("--burst-only", action="store_true", help="only step 4")
    args = parser.parse_args()
    keep_heap()
    root = find_data_dir(None)
    specs = all_sensors()
    if args.sensor:
        specs = {name: specs[name] for name in args.sensor}
    files = sorted(root.glob("*/*-1m.csv.gz")) + sorted(root.glob("*/*-5m.csv.gz")) + sorted(root.glob("*/*-1h.csv.gz"))
    files = [f for f in files if "markprice" not in f.name]
    if args.file:
        files = [f for f in files if any(part in str(f) for part in args.file)]
    rows: int | None = None
    if args.quick:
        files = [f for f in files if f.name in ("ADAUSDT-1m.csv.gz", "BTCUSDT-1m.csv.gz")][:2] + \
            [f for f in files if f.name == "SOLUSDT-5m.csv.gz"][:1]
        rows = 20_000
    started = time.perf_counter()
    total_checked = total_bad = total_bars = 0
    for path in [] if args.burst_only else files:
        checked, bad = audit_file(path, specs, rows, args.step)
        total_checked += checked
        total_bad += bad
        total_bars += len(load_candles(path)) if rows is None else min(rows, len(load_candles(path)))
        print(f"{path.parent.name}/{path.name}: {checked} live checks, {bad} mismatched "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if not args.burst_only:
        emit("history_bars", total_bars, "bars", sensors=len(specs), files=len(files))
        emit("live_checks", total_checked, "bars")
        emit("mismatched_bars", total_bad, "bars")
    if args.no_burst:
        return
    checked = bad = 0
    # one recording per burst: 7 futures symbols (1m), 9 spot symbols (5m, with real outages)
    for pattern in ("futures-2023/*-1m.csv.gz", "spot-2021/*-5m.csv.gz"):
        recording = sorted(root.glob(pattern))
        if args.file:
            recording = [f for f in recording if any(part in str(f) for part in args.file)]
        if not recording:
            continue
        c, b = audit_bursts(recording, specs, rows, args.burst_step)
        checked, bad = checked + c, bad + b
        print(f"bursts of {len(recording)} symbols ({pattern}): {c} symbol-bars, {b} mismatched "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    emit("burst_checks", checked, "symbol-bars")
    emit("burst_mismatched_readings", bad, "readings")


if __name__ == "__main__":
    main()
