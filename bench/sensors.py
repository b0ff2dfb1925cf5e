"""Sensor benchmarks on real recorded candles (one JSON object per figure per line).

(a) all 1m sensors for one symbol-candle, in process (µs); and the floor under any pooled
    evaluation: a task-shaped message to a worker process and back with no work (µs);
(b) a burst of 50 symbols closing together → all readings back through the worker pool
    (``SensorPool.evaluate_many``: every symbol's signal rows, ``SymbolReadings``), p50/p99
    over ≥ 200 bursts, the engine process's own CPU per burst; ``burst50_objects_*``: the same
    bursts until every symbol's reading objects are built too (the engine builds them symbol
    by symbol as it decides); and the single-process time for the same work — symbol by symbol
    (``evaluate_local``) and as the workers do it, stacked (``evaluate_burst_local``, wall and
    CPU: the CPU figure is what a loaded, shared machine distorts least);
(c) batch mode: the whole sensor set over ≥ 1 M real bars (bars/s), in one process and in one
    process per core (one history each); ``_cpu`` lines give the same bars per CPU second, what
    unshared cores would do. ``--per-sensor`` adds each sensor's own batch cost (ns/bar).

Figures are medians over runs. The machine may be shared: read them as such.

    python bench/sensors.py [--quick] [--batch-only] [--per-sensor]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import SensorSettings  # noqa: E402
from core.heap import freeze_startup_heap  # noqa: E402
from core.history import CandleSeries, find_data_dir, load_candles  # noqa: E402
from core.market_data import MarketData  # noqa: E402
from core.sensor_pool import SensorPool, evaluate_burst_local, evaluate_local, worker_count  # noqa: E402
from core.types import Timeframe  # noqa: E402
from sensors.base import Bars  # noqa: E402
from sensors.batch import keep_heap, run_batch  # noqa: E402
from sensors.registry import all_sensors  # noqa: E402

BENCH = "sensors"
BURST_SYMBOLS = 50


def emit(metric: str, value: float, unit: str, runs: int, **extra: object) -> None:
    print(json.dumps({"bench": BENCH, "metric": metric, "value": round(value, 3), "unit": unit, "runs": runs,
                      **extra}), flush=True)


def one_minute_files(root: Path) -> list[Path]:
    return sorted(root.glob("futures-20*/*-1m.csv.gz"))


def bench_single_candle(series: CandleSeries, runs: int) -> None:
    settings = SensorSettings(timeframes=["1m"])
    specs = all_sensors()
    md = MarketData([series.symbol], [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    try:
        pool_plan = SensorPool(md, settings).plan  # builds the plan only; no process is started
        for i in range(1_200):
            md.append_values(series.symbol, int(series.open_time[i]), series.open[i], series.high[i],
                             series.low[i], series.close[i], series.volume[i])
        n = len(pool_plan.sensors_for(Timeframe.M1))
        medians, cpu_medians = [], []
        for _ in range(runs):
            samples, cpu = [], []
            for _ in range(50):
                t, c = time.perf_counter(), time.process_time()
                evaluate_local(md, pool_plan, specs, series.symbol, (Timeframe.M1,))
                samples.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            medians.append(statistics.median(samples))
            cpu_medians.append(statistics.mean(cpu))  # process_time ticks are coarse: average them
        emit("all_sensors_one_candle", statistics.median(medians) * 1e6, "us", runs, sensors=n)
        emit("all_sensors_one_candle_cpu", statistics.median(cpu_medians) * 1e6, "us", runs, sensors=n)
    finally:
        md.close()


def _echo(conn: mp.connection.Connection) -> None:
    """Send every message straight back (a worker that does no work)."""
    while (msg := conn.recv()) is not None:
        conn.send(msg)


def bench_pipe_roundtrip(samples: int) -> None:
    """The floor under every pooled evaluation: a task-shaped message to a worker process and
    back through a multiprocessing pipe (the pool's own context), with no work between — what
    waking another process costs on this machine, paced like bars (one every 5 ms)."""
    ctx = mp.get_context("forkserver")
    here, there = ctx.Pipe()
    worker = ctx.Process(target=_echo, args=(there,), daemon=True)
    worker.start()
    try:
        times = []
        for i in range(samples):
            time.sleep(0.005)
            t = time.perf_counter()
            here.send(("eval", i, (("BTCUSDT", (("1m", 1_000),)),)))
            here.recv()
            times.append(time.perf_counter() - t)
    finally:
        here.send(None)
        worker.join(timeout=5)
    emit("pipe_roundtrip_p50", float(np.percentile(times, 50)) * 1e6, "us", 1, samples=samples)
    emit("pipe_roundtrip_p99", float(np.percentile(times, 99)) * 1e6, "us", 1, samples=samples)


async def bench_burst(sources: list[CandleSeries], bursts: int, runs: int, quick: bool) -> None:
    settings = SensorSettings(timeframes=["1m"])
    symbols = [f"S{k:02d}USDT" for k in range(BURST_SYMBOLS)]
    feeds = {s: sources[k % len(sources)] for k, s in enumerate(symbols)}
    offsets = {s: 500 * (k // len(sources)) for k, s in enumerate(symbols)}
    warm = 1_100
    need = warm + bursts * runs + 1
    md = MarketData(symbols, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    pool = SensorPool(md, settings)
    specs = all_sensors()
    cursor = {s: offsets[s] for s in symbols}

    def close_all() -> dict[str, tuple[Timeframe, ...]]:
        out = {}
        for s in symbols:
            src, i = feeds[s], cursor[s]
            out[s] = md.append_values(s, int(src.open_time[i]), src.open[i], src.high[i], src.low[i],
                                      src.close[i], src.volume[i])
            cursor[s] = i + 1
        return out

    try:
        assert all(len(feeds[s]) >= offsets[s] + need for s in symbols), "not enough real bars"
        for _ in range(warm):
            close_all()
        await pool.start()
        freeze_startup_heap()  # as a session does once its engine is ready (core.heap)
        p50s, p99s, singles, parent_cpu, stacked, stacked_cpu = [], [], [], [], [], []
        built_p50s, built_p99s, built_cpu = [], [], []
        readings = 0
        for _ in range(runs):
            samples, cpu, built, cpu_built = [], [], [], []
            for _ in range(bursts):
                closed = close_all()
                t, c = time.perf_counter(), time.process_time()
                results = await pool.evaluate_many(closed)
                samples.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                for symbol_readings in results.values():  # what the engine builds, symbol by symbol
                    symbol_readings[0]
                built.append(time.perf_counter() - t)
                cpu_built.append(time.process_time() - c)
                readings = sum(len(r) for r in results.values())
            p50s.append(float(np.percentile(samples, 50)))
            p99s.append(float(np.percentile(samples, 99)))
            parent_cpu.append(statistics.mean(cpu))
            built_p50s.append(float(np.percentile(built, 50)))
            built_p99s.append(float(np.percentile(built, 99)))
            built_cpu.append(statistics.mean(cpu_built))
            # the same work in this one process, on the same bars
            single = []
            for _ in range(min(bursts, 10 if quick else 20)):
                t = time.perf_counter()
                for s in symbols:
                    evaluate_local(md, pool.plan, specs, s, (Timeframe.M1,))
                single.append(time.perf_counter() - t)
            singles.append(statistics.median(single))
            wall, cpu = [], []
            for _ in range(min(bursts, 10 if quick else 20)):
                t, c = time.perf_counter(), time.process_time()
                evaluate_burst_local(md, pool.plan, specs, closed)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            stacked.append(statistics.median(wall))
            stacked_cpu.append(statistics.mean(cpu))
        workers = len(pool.worker_pids)
        emit("burst50_p50", statistics.median(p50s) * 1e3, "ms", runs, workers=workers, bursts=bursts,
             readings=readings)
        emit("burst50_p99", statistics.median(p99s) * 1e3, "ms", runs, workers=workers, bursts=bursts)
        emit("burst50_engine_cpu", statistics.median(parent_cpu) * 1e3, "ms", runs)  # dispatch + signal rows
        # the same bursts up to every reading object built (the engine does it as it reaches each symbol)
        emit("burst50_objects_p50", statistics.median(built_p50s) * 1e3, "ms", runs, workers=workers, bursts=bursts)
        emit("burst50_objects_p99", statistics.median(built_p99s) * 1e3, "ms", runs, workers=workers, bursts=bursts)
        emit("burst50_objects_engine_cpu", statistics.median(built_cpu) * 1e3, "ms", runs)
        emit("burst50_single_process", statistics.median(singles) * 1e3, "ms", runs)
        emit("burst50_single_process_stacked", statistics.median(stacked) * 1e3, "ms", runs)
        emit("burst50_single_process_stacked_cpu", statistics.median(stacked_cpu) * 1e3, "ms", runs)
    finally:
        await pool.stop()
        md.close()


async def bench_realistic(root: Path, hours: int) -> None:
    """What the engine really sends: every symbol of a dataset closing its 1m bar each minute,
    and at the top of each hour its 5m, 15m and 1h bars too (all four voter timeframes). The
    recordings hold one month of 1m bars: everything before the measured hours is warm-up, so
    the 1m/5m/15m windows are full and the 1h ones hold ~700 of their up to 962 bars (the 1h
    share is slightly understated). 4h (five context sensors, every 4 hours) is left out."""
    sources = [load_candles(p) for p in sorted((root / "futures-2023").glob("*-1m.csv.gz"))]
    settings = SensorSettings(timeframes=["1m", "5m", "15m", "1h"])
    tfs = [Timeframe(t) for t in settings.timeframes]
    symbols = [s.symbol for s in sources]
    md = MarketData(symbols, tfs, settings.window_bars + settings.ring_slack_bars)
    pool = SensorPool(md, settings)
    # one clock for all symbols: start where every recording still has ``hours`` to go
    start = min(int(s.open_time[len(s) - hours * 60 - 1]) for s in sources)
    start -= start % 3_600_000
    cursor = {s.symbol: 0 for s in sources}

    def close_until(t_ms: int) -> dict[str, tuple[Timeframe, ...]]:
        closed: dict[str, tuple[Timeframe, ...]] = {}
        for s in sources:
            i = cursor[s.symbol]
            while i < len(s) and s.open_time[i] <= t_ms:
                closed[s.symbol] = md.append_values(s.symbol, int(s.open_time[i]), s.open[i], s.high[i], s.low[i],
                                                    s.close[i], s.volume[i])
                i += 1
            cursor[s.symbol] = i
        return closed

    try:
        close_until(start - 60_000)  # warm-up: everything before the measured hours
        await pool.start()
        freeze_startup_heap()  # as a session does once its engine is ready (core.heap)
        minute, hour, single, hour_pairs = [], [], [], 0
        specs = all_sensors()
        for t_ms in range(start, start + hours * 3_600_000, 60_000):
            closed = close_until(t_ms)
            t = time.perf_counter()
            await pool.evaluate_many(closed)
            elapsed = time.perf_counter() - t
            if any(Timeframe.H1 in c for c in closed.values()):
                hour.append(elapsed)
                hour_pairs = sum(len(c) for c in closed.values())
            else:
                minute.append(elapsed)
                if len(single) < 60:  # the same minute's work in this one process
                    t = time.perf_counter()
                    for symbol, c in closed.items():
                        evaluate_local(md, pool.plan, specs, symbol, c)
                    single.append(time.perf_counter() - t)
        emit("realistic_minute_p50", float(np.percentile(minute, 50)) * 1e3, "ms", 1, symbols=len(symbols),
             bursts=len(minute))
        emit("realistic_minute_p99", float(np.percentile(minute, 99)) * 1e3, "ms", 1, symbols=len(symbols),
             bursts=len(minute))
        emit("realistic_hour_close_p50", statistics.median(hour) * 1e3, "ms", 1, symbols=len(symbols),
             bursts=len(hour), symbol_timeframes=hour_pairs)
        emit("realistic_hour_close_max", max(hour) * 1e3, "ms", 1, symbols=len(symbols), bursts=len(hour))
        emit("realistic_minute_single_process", statistics.median(single) * 1e3, "ms", 1, symbols=len(symbols))
    finally:
        await pool.stop()
        md.close()


# The histories of figure (c), set before the worker processes fork so each inherits them:
# a task names a history by index (no pickling of its arrays through a pipe).
_HISTORIES: list[Bars] = []


def _batch_one(index: int) -> tuple[int, float]:
    """One whole history in this worker: (bars, CPU seconds)."""
    b = _HISTORIES[index]
    t = time.process_time()
    run_batch(b, {n: (s, s.defaults) for n, s in all_sensors().items()})
    return len(b), time.process_time() - t


def bench_batch(histories: list[Bars], runs: int) -> None:
    """Figure (c). Wall-clock rates are the figures; the ``_cpu`` lines divide the same bars by
    CPU time (per process), i.e. what unshared cores would give — the machine may be busy."""
    specs = {n: (s, s.defaults) for n, s in all_sensors().items()}
    bars = sum(len(b) for b in histories)
    rates, cpu_rates = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        for b in histories:
            run_batch(b, specs)
        rates.append(bars / (time.perf_counter() - t))
        cpu_rates.append(bars / (time.process_time() - c))
    emit("batch_all_sensors", statistics.median(rates), "bars/s", runs, bars=bars, sensors=len(specs))
    emit("batch_all_sensors_cpu", statistics.median(cpu_rates), "bars/s", runs, bars=bars, sensors=len(specs))
    # replays are independent: one history per process, as a sweep would run them
    workers = worker_count(0)
    _HISTORIES[:] = histories
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        list(pool.map(_batch_one, range(workers)))  # start the processes (and warm them) first
        rates, cpu_rates = [], []
        for _ in range(runs):
            t = time.perf_counter()
            done = list(pool.map(_batch_one, range(len(histories))))
            rates.append(sum(n for n, _ in done) / (time.perf_counter() - t))
            cpu_rates.append(sum(n for n, _ in done) / (sum(c for _, c in done) / workers))
    _HISTORIES.clear()
    emit("batch_all_sensors_parallel", statistics.median(rates), "bars/s", runs, bars=bars, processes=workers)
    emit("batch_all_sensors_parallel_cpu", statistics.median(cpu_rates), "bars/s", runs, bars=bars,
         processes=workers)


def bench_batch_per_sensor(histories: list[Bars], runs: int) -> None:
    """Each sensor alone over every history (CPU time, so a shared machine inflates it less),
    most expensive first: where batch time goes. Its TA-Lib calls are not shared with others."""
    keep_heap()
    bars = sum(len(b) for b in histories)
    costs = {}
    for name, spec in all_sensors().items():
        samples = []
        for _ in range(runs):
            t = time.process_time()
            for b in histories:
                spec.compute(b, spec.defaults)
            samples.append(time.process_time() - t)
        costs[name] = statistics.median(samples)
    for name, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
        emit("batch_sensor_cost", cost / bars * 1e9, "ns/bar", runs, sensor=name)
    emit("batch_sensor_cost_sum", sum(costs.values()) / bars * 1e9, "ns/bar", runs, sensors=len(costs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs (under a minute)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--batch-only", action="store_true", help="figure (c) only")
    parser.add_argument("--per-sensor", action="store_true",
                        help="also each sensor's own batch cost (ns/bar, its TA-Lib calls not shared)")
    args = parser.parse_args()
    root = find_data_dir(args.data_dir)
    runs = 1 if args.quick else 5
    minute_series = [load_candles(p) for p in one_minute_files(root)]
    emit("workers", worker_count(0), "processes", 1)
    if not args.batch_only:
        bench_single_candle(minute_series[0], 3 if args.quick else 5)
        bench_pipe_roundtrip(300 if args.quick else 1_000)
        asyncio.run(bench_burst(minute_series, 200, runs, args.quick))
        asyncio.run(bench_realistic(root, 6 if args.quick else 24))
    histories = [Bars(s.open, s.high, s.low, s.close, s.volume) for s in minute_series]
    total = sum(len(b) for b in histories)
    for path in sorted(root.glob("spot-2021/*-5m.csv.gz")):
        if total >= 1_000_000:
            break
        s = load_candles(path)
        histories.append(Bars(s.open, s.high, s.low, s.close, s.volume))
        total += len(s)
    bench_batch(histories, 1 if args.quick else 3)
    if args.per_sensor:
        bench_batch_per_sensor(histories, 1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
