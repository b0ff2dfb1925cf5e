"""The sensor pool with real worker processes, real shared memory and real failures."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

import sensor_faults as faults
from config.settings import SensorSettings
from core.history import CandleSeries, load_candles
from core.market_data import MarketData
from core.events import SensorReading
from core.metrics import REGISTRY
from core.sensor_pool import SensorPool, SymbolReadings, assign_buffers
from core.types import Timeframe
from sensors.base import Bars
from sensors.registry import get

T = Timeframe
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
PLUGINS = (faults.__name__,)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def series(data_dir: Path) -> dict[str, CandleSeries]:
    return {s: load_candles(data_dir / "futures-2023" / f"{s}-1m.csv.gz").slice(0, 1_300) for s in SYMBOLS}


def _append(md: MarketData, s: CandleSeries, i: int, *, volume: float | None = None) -> tuple[T, ...]:
    v = s.volume[i] if volume is None else volume
    return md.append_values(s.symbol, int(s.open_time[i]), s.open[i], s.high[i], s.low[i], s.close[i], v)


def _restarts(reason: str) -> float:
    return REGISTRY.get_sample_value("casino_sensor_worker_restarts_total", {"reason": reason}) or 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive either
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def pool_factory(series: dict[str, CandleSeries]) -> AsyncIterator:
    made: list[tuple[MarketData, SensorPool]] = []

    async def make(warm: int = 1_100, **kwargs: object) -> tuple[MarketData, SensorPool]:
        settings = SensorSettings(workers=2, timeframes=["1m", "5m"], **kwargs)
        md = MarketData(SYMBOLS, [T.M1, T.M5], settings.window_bars + settings.ring_slack_bars)
        pool = SensorPool(md, settings, plugins=PLUGINS)
        made.append((md, pool))
        for i in range(warm):
            for s in series.values():
                _append(md, s, i)
        await pool.start()
        return md, pool

    yield make
    for md, pool in made:
        await pool.stop()
        md.close()


async def test_readings_equal_batch_and_shutdown_leaves_nothing(pool_factory, series) -> None:
    md, pool = await pool_factory()
    pids = pool.worker_pids
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    names = md.segment_names()
    readings = {}
    for i in range(1_100, 1_105):
        closes = {s: _append(md, series[s], i) for s in SYMBOLS}
        results = await asyncio.gather(*(pool.evaluate(s, closes[s]) for s in SYMBOLS))
        for s, rs in zip(SYMBOLS, results, strict=True):
            readings[(s, i)] = rs
    rs = readings[("ETHUSDT", 1_104)]
    one_minute = [r for r in rs if r.timeframe is T.M1]
    assert len(one_minute) == len(pool.plan.sensors_for(T.M1)) and len(one_minute) >= 50
    eth = series["ETHUSDT"]
    bars = Bars(*(col[:1_105] for col in (eth.open, eth.high, eth.low, eth.close, eth.volume)))
    for r in one_minute:
        assert r.open_time_ms == int(eth.open_time[1_104]) and r.symbol == "ETHUSDT"
        assert (r.tp_fraction, r.sl_fraction) == (0.015, 0.010)
        expected = get(r.sensor).compute(bars)[-1] if not r.sensor.startswith("fault") else None
        if r.sensor == "fault_raises":
            assert r.signal is None
        elif expected is not None:
            assert r.signal is not None and abs(r.signal - expected) <= 1e-9, r.sensor
    assert any(r.timeframe is T.M5 for (s, i), rrs in readings.items() for r in rrs)  # 5m bars closed too
    await pool.stop()
    md.close()
    assert not any(_alive(p) for p in pids)
    assert not [n for n in names if os.path.exists(f"/dev/shm/{n}")]


async def test_a_raising_sensor_is_isolated_counted_and_logged_once(pool_factory, series, caplog) -> None:
    md, pool = await pool_factory()
    before = REGISTRY.get_sample_value("casino_sensor_errors_total", {"sensor": "fault_raises"}) or 0.0
    pid = pool.worker_pids[0]
    for i in range(1_100, 1_104):
        rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], i))
        by = {r.sensor: r for r in rs if r.timeframe is T.M1}
        assert by["fault_raises"].signal is None and by["rsi14"].signal is not None
    assert REGISTRY.get_sample_value("casino_sensor_errors_total", {"sensor": "fault_raises"}) == before + 4
    assert caplog.text.count("sensor fault_raises raised") == 1
    assert pool.worker_pids[0] == pid  # the worker survived


async def test_a_dead_worker_gives_missing_readings_and_is_replaced(pool_factory, series) -> None:
    md, pool = await pool_factory()
    before = _restarts("died")
    rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_100, volume=faults.EXIT_VOLUME))
    assert rs and all(r.signal is None for r in rs)
    assert _restarts("died") == before + 1
    await asyncio.sleep(0)
    old = [p for p in pool.worker_pids]
    # a worker killed from outside is noticed as well
    os.kill(pool.worker_pids[1], signal.SIGKILL)
    rs = await pool.evaluate("ETHUSDT", _append(md, series["ETHUSDT"], 1_100))
    assert all(r.signal is None for r in rs)
    assert _restarts("died") == before + 2
    rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_101))
    assert sum(r.signal is not None for r in rs) >= 50  # the replacement serves the next bar
    assert not set(pool.worker_pids) & set(old[1:]) and not any(_alive(p) for p in old[1:])


async def test_a_hung_worker_times_out_is_killed_and_replaced(pool_factory, series) -> None:
    md, pool = await pool_factory(task_timeout_ms=500)
    hung_pid = pool.worker_pids[0]
    before = _restarts("hung")
    rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_100, volume=faults.HANG_VOLUME))
    assert rs and all(r.signal is None for r in rs)
    assert _restarts("hung") == before + 1
    assert not _alive(hung_pid)
    rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_101))
    assert sum(r.signal is not None for r in rs) >= 50
    assert pool.worker_pids[0] != hung_pid


async def test_workers_are_recycled_after_n_tasks(pool_factory, series) -> None:
    md, pool = await pool_factory(recycle_after_tasks=10)
    first = pool.worker_pids[0]
    before, died = _restarts("recycle_tasks"), _restarts("died")
    for i in range(1_100, 1_125):
        rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], i))
        assert sum(r.signal is not None for r in rs) >= 50  # no reading lost to recycling
    assert _restarts("recycle_tasks") >= before + 2
    assert pool.worker_pids[0] != first
    assert _restarts("died") == died  # a recycled worker is not mistaken for a dead one
    await asyncio.sleep(0.2)
    await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_125))
    assert not _alive(first)


async def test_workers_are_recycled_above_the_rss_bound(pool_factory, series) -> None:
    md, pool = await pool_factory(max_worker_rss_mb=180)
    first = pool.worker_pids[0]
    before = _restarts("recycle_rss")
    for i in range(1_100, 1_140):  # control: a worker without the leak stays under the bound
        await pool.evaluate("ETHUSDT", _append(md, series["ETHUSDT"], i))
    assert _restarts("recycle_rss") == before
    _ = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_100, volume=faults.BLOAT_VOLUME))
    for i in range(1_101, 1_140):
        await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], i))
    assert _restarts("recycle_rss") == before + 1
    assert pool.worker_pids[0] != first


async def test_workers_that_cannot_start_fail_start_and_leave_nothing(series, monkeypatch) -> None:
    # the plugin kills every process importing it except the one named here (this one)
    monkeypatch.setenv("CASINO_TEST_ENGINE_PID", str(os.getpid()))
    settings = SensorSettings(workers=2, timeframes=["1m"], start_timeout_s=20)
    md = MarketData(SYMBOLS, [T.M1], settings.window_bars + settings.ring_slack_bars)
    pool = SensorPool(md, settings, plugins=("sensor_crash_plugin",))
    try:
        with pytest.raises(RuntimeError, match="before it was ready"):
            await pool.start()
        assert pool.worker_pids == []
        assert _restarts("died") >= 2
    finally:
        await pool.stop()
        md.close()


async def test_a_burst_is_one_task_per_worker_and_a_hung_worker_loses_only_its_symbols(pool_factory, series) -> None:
    md, pool = await pool_factory(task_timeout_ms=1_000)
    assert pool._slot_of[("BTCUSDT", T.M1)] == pool._slot_of[("SOLUSDT", T.M5)] != pool._slot_of[("ETHUSDT", T.M1)]
    closes = {s: _append(md, series[s], 1_100) for s in SYMBOLS}
    burst = await pool.evaluate_many(closes)
    assert set(burst) == set(SYMBOLS)
    for s in SYMBOLS:
        src = series[s]
        bars = Bars(*(col[:1_101] for col in (src.open, src.high, src.low, src.close, src.volume)))
        one_minute = [r for r in burst[s] if r.timeframe is T.M1]
        assert len(one_minute) == len(pool.plan.sensors_for(T.M1))
        for r in one_minute:
            # built in bulk, yet the very object the constructor makes
            assert r == SensorReading(r.sensor, s, T.M1, int(src.open_time[1_100]), r.signal, 0.015, 0.010, r.context)
            if not r.sensor.startswith("fault"):
                assert r.signal is not None and abs(r.signal - get(r.sensor).compute(bars)[-1]) <= 1e-9, r.sensor
    hung_pid = pool.worker_pids[pool._slot_of[("BTCUSDT", T.M1)]]
    before = _restarts("hung")
    closes = {"BTCUSDT": _append(md, series["BTCUSDT"], 1_101, volume=faults.HANG_VOLUME),
              "SOLUSDT": _append(md, series["SOLUSDT"], 1_101), "ETHUSDT": _append(md, series["ETHUSDT"], 1_101)}
    burst = await pool.evaluate_many(closes)
    assert all(r.signal is None for s in ("BTCUSDT", "SOLUSDT") for r in burst[s])  # missing, never neutral
    assert sum(r.signal is not None for r in burst["ETHUSDT"]) >= 50  # the other worker's answer is kept
    assert _restarts("hung") == before + 1 and not _alive(hung_pid)
    closes = {s: _append(md, series[s], 1_102) for s in SYMBOLS}
    burst = await pool.evaluate_many(closes)
    assert all(sum(r.signal is not None for r in burst[s]) >= 50 for s in SYMBOLS)
    assert await pool.evaluate_many({}) == {}


def test_symbol_readings_are_built_when_first_read_in_the_order_added() -> None:
    meta_1m = (("ema_cross", 0.015, 0.010, False), ("htf_trend", 0.015, 0.010, True))
    meta_5m = (("rsi14", 0.03, 0.02, False),)
    row = np.frombuffer(np.array([0.5, math.nan]).tobytes())  # as a worker's answer arrives: read-only bytes
    readings = SymbolReadings("BTCUSDT")
    readings.add(T.M1, 60_000, meta_1m, row)
    readings.add(T.M5, 0, meta_5m, None)  # a lost worker's timeframe: all missing
    assert len(readings) == 3 and readings._items is None  # counted without building anything
    assert list(readings) == [
        SensorReading("ema_cross", "BTCUSDT", T.M1, 60_000, 0.5, 0.015, 0.010, False),
        SensorReading("htf_trend", "BTCUSDT", T.M1, 60_000, None, 0.015, 0.010, True),  # NaN → missing
        SensorReading("rsi14", "BTCUSDT", T.M5, 0, None, 0.03, 0.02, False),
    ]
    first = readings[0]
    assert readings[0] is first and readings[-1].timeframe is T.M5  # built once, then the same objects
    readings.add(T.M15, 0, meta_5m, np.array([-1.0]))  # added after a read: appended to the objects
    assert len(readings) == 4 and readings[0] is first and readings[3].signal == -1.0


async def test_submitted_tasks_compute_while_the_caller_works_and_time_out_from_the_submit(pool_factory, series) -> None:
    md, pool = await pool_factory(task_timeout_ms=800)
    closes = {s: _append(md, series[s], 1_100) for s in SYMBOLS}
    sent = pool.submit(closes)  # sent at once: the workers start before anything is awaited
    time.sleep(0.3)  # the caller's own work (blocking the loop, as the engine's tracker does)
    assert all(task.future.done() is False for task in sent.tasks)  # answers wait for the loop…
    early = await pool.collect(sent)
    again = await pool.evaluate_many(closes)  # …and are the same readings as asked in one go
    assert {s: [(r.sensor, r.timeframe, r.signal) for r in early[s]] for s in SYMBOLS} == \
        {s: [(r.sensor, r.timeframe, r.signal) for r in again[s]] for s in SYMBOLS}
    # the timeout runs from the submit: time spent before collecting counts against it
    hung_pid = pool.worker_pids[pool._slot_of[("BTCUSDT", T.M1)]]
    sent = pool.submit({"BTCUSDT": _append(md, series["BTCUSDT"], 1_101, volume=faults.HANG_VOLUME)})
    time.sleep(0.6)
    t = time.monotonic()
    rs = (await pool.collect(sent))["BTCUSDT"]
    assert time.monotonic() - t < 0.75 and rs and all(r.signal is None for r in rs)  # not a fresh 0.8 s
    assert not _alive(hung_pid)


def test_buffers_have_one_owner_and_fewer_symbols_than_workers_spread_their_timeframes() -> None:
    tfs = (T.M1, T.M5, T.M15, T.H1, T.H4)
    many = assign_buffers(SYMBOLS, tfs, 2)  # symbols ≥ workers: a symbol's timeframes stay together
    assert {s: {many[(s, tf)] for tf in tfs} for s in SYMBOLS} == {"BTCUSDT": {0}, "ETHUSDT": {1}, "SOLUSDT": {0}}
    one = assign_buffers(["BTCUSDT"], tfs, 2)  # one symbol, two workers: its timeframes alternate
    assert [one[("BTCUSDT", tf)] for tf in tfs] == [0, 1, 0, 1, 0]
    assert assign_buffers(["BTCUSDT"], (T.M1,), 4) == {("BTCUSDT", T.M1): 0}  # never more workers than buffers


async def test_one_symbol_on_two_workers_gets_every_timeframe_in_order_and_loses_only_what_a_hung_worker_owed(
        series) -> None:
    settings = SensorSettings(workers=2, timeframes=["1m", "5m"], task_timeout_ms=1_000)
    md = MarketData(["BTCUSDT"], [T.M1, T.M5], settings.window_bars + settings.ring_slack_bars)
    pool = SensorPool(md, settings, plugins=PLUGINS)
    btc = series["BTCUSDT"]
    try:
        for i in range(1_100):
            _append(md, btc, i)
        await pool.start()
        assert len(pool.worker_pids) == 2 and pool._slot_of[("BTCUSDT", T.M1)] != pool._slot_of[("BTCUSDT", T.M5)]
        i = next(k for k in range(1_100, 1_110) if (int(btc.open_time[k]) + 60_000) % 300_000 == 0)
        for k in range(1_100, i):
            _append(md, btc, k)
        closed = _append(md, btc, i)
        assert closed == (T.M1, T.M5)
        rs = await pool.evaluate("BTCUSDT", closed)
        tfs = [r.timeframe for r in rs]
        assert tfs == sorted(tfs, key=lambda tf: tf.ms) and set(tfs) == {T.M1, T.M5}  # 1m first, as one worker gives
        bars = Bars(*(col[:i + 1] for col in (btc.open, btc.high, btc.low, btc.close, btc.volume)))
        for r in rs:
            if r.timeframe is T.M1 and not r.sensor.startswith("fault"):
                assert r.signal is not None and abs(r.signal - get(r.sensor).compute(bars)[-1]) <= 1e-9, r.sensor
        five = md.ring("BTCUSDT", T.M5)
        assert {r.open_time_ms for r in rs if r.timeframe is T.M5} == {five.open_time(md.last_index("BTCUSDT", T.M5))}
        assert sum(r.signal is not None for r in rs if r.timeframe is T.M5) >= 40  # computed by the other worker
        # a hang on the 1m bar: its worker is replaced, the 5m worker's answer is kept
        hung_pid = pool.worker_pids[pool._slot_of[("BTCUSDT", T.M1)]]
        i = next(k for k in range(i + 1, i + 10) if (int(btc.open_time[k]) + 60_000) % 300_000 == 0)
        for k in range(md.last_index("BTCUSDT", T.M1) + 1, i):
            _append(md, btc, k)
        rs = await pool.evaluate("BTCUSDT", _append(md, btc, i, volume=faults.HANG_VOLUME))
        assert all(r.signal is None for r in rs if r.timeframe is T.M1)
        assert sum(r.signal is not None for r in rs if r.timeframe is T.M5) >= 40  # the other worker's answer
        assert not _alive(hung_pid) and len(pool.worker_pids) == 2
    finally:
        await pool.stop()
        md.close()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and at least 2 CPUs")
async def test_each_worker_is_bound_to_its_own_cpu_unless_told_not_to(pool_factory, series) -> None:
    md, pool = await pool_factory()
    cpus = sorted(os.sched_getaffinity(0))
    assert [os.sched_getaffinity(pid) for pid in pool.worker_pids] == [{cpus[0]}, {cpus[1]}]
    dead = pool.worker_pids[0]
    rs = await pool.evaluate("BTCUSDT", _append(md, series["BTCUSDT"], 1_100, volume=faults.EXIT_VOLUME))
    assert rs and not _alive(dead)
    deadline = time.monotonic() + 10
    while os.sched_getaffinity(pool.worker_pids[0]) != {cpus[0]} and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the replacement binds itself as it starts
    assert os.sched_getaffinity(pool.worker_pids[0]) == {cpus[0]}  # its slot's CPU again
    _, free = await pool_factory(pin_workers=False)
    assert all(os.sched_getaffinity(pid) == set(cpus) for pid in free.worker_pids)
