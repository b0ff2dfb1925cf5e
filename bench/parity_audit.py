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

Figures: bars checked live and mismatched bars (target 0), per file set. Each mismatch is
printed on stderr with the sensor, file, bar and both values.

    python bench/parity_audit.py [--quick] [--sensor NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.history import find_data_dir, load_candles  # noqa: E402
from sensors.base import Bars, SensorSpec  # noqa: E402
from sensors.batch import keep_heap, live_value  # noqa: E402
from sensors.registry import all_sensors  # noqa: E402

BENCH = "parity_audit"
TOLERANCE = 1e-9
STRIDE = 1_000
LIVE_STEP = 29
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 20,000 bars of three files")
    parser.add_argument("--sensor", action="append", help="only these sensors (repeatable)")
    parser.add_argument("--file", action="append", help="only files whose name contains this (repeatable)")
    parser.add_argument("--step", type=int, default=LIVE_STEP, help="check every STEP-th bar live (default %(default)s)")
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
    for path in files:
        checked, bad = audit_file(path, specs, rows, args.step)
        total_checked += checked
        total_bad += bad
        total_bars += len(load_candles(path)) if rows is None else min(rows, len(load_candles(path)))
        print(f"{path.parent.name}/{path.name}: {checked} live checks, {bad} mismatched "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    emit("history_bars", total_bars, "bars", sensors=len(specs), files=len(files))
    emit("live_checks", total_checked, "bars")
    emit("mismatched_bars", total_bad, "bars")


if __name__ == "__main__":
    main()
