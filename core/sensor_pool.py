"""Persistent sensor worker processes fed through pipes and shared memory.

Each worker owns a fixed subset of symbols (every symbol is served by exactly one worker at a
time) — with fewer symbols than workers, a fixed subset of each symbol's timeframes instead
(``assign_buffers``): either way no (symbol, timeframe) buffer has two readers. For the bars that just closed the engine sends each worker one task
``(task id, ((symbol, ((timeframe, bar index), …)), …))`` covering all its symbols of the burst —
never arrays: the worker reads the bars from the shared-memory rings (``core.market_data``),
computes every planned sensor for all its symbols of each timeframe together
(``core.sensor_plan.evaluate_burst``) and answers with one signal matrix per timeframe, from
which the engine builds the readings in bulk. A pipe per worker, not an executor: ARCHITECTURE.md measured ≈ 28 µs per
pipe round trip against ≈ 200 µs through ProcessPoolExecutor.

Failure handling (the player must see "missing", never "neutral"):
- a worker that dies (pipe EOF) or does not answer within ``task_timeout_ms`` is killed and
  replaced; every reading it owed comes back with ``signal=None``;
- a sensor that raises gives a missing reading; the error is counted every time and logged
  once per ``error_log_interval_s`` per sensor; the worker carries on;
- a worker is recycled after ``recycle_after_tasks`` tasks or above ``max_worker_rss_mb``:
  its replacement takes new tasks at once while the old one finishes what it has.

Shutdown (``stop``) stops every worker (killing stragglers) and reaps it; the shared memory
belongs to ``MarketData`` and is unlinked by its ``close()``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import itertools
import logging
import math
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from config.settings import SensorSettings
from core.events import SensorReading
from core.heap import set_malloc_thresholds
from core.market_data import BufferLayout, MarketData, RingBuffer
from core.metrics import SENSOR_ERRORS, SENSOR_MISSING, SENSOR_QUEUE_DEPTH, SENSOR_SECONDS, SENSOR_WORKER_RESTARTS
from core.sensor_plan import BarResult, BurstResult, SensorPlan, build_plan, evaluate_bar, evaluate_burst
from core.types import Timeframe

log = logging.getLogger(__name__)

_RSS_CHECK_EVERY = 32  # tasks between two RSS reads in a worker (/proc read ≈ 10 µs)
_MAX_EARLY_DEATHS = 3  # replacements that die before attaching, in a row, before giving up on a slot
_PRELOAD = ["core.sensor_pool", "sensors.registry", "numpy", "talib"]


def worker_count(configured: int) -> int:
    """``[sensors].workers``: 0 means one per core, and never fewer than 2."""
    return configured if configured > 0 else max(2, os.cpu_count() or 2)


# ------------------------------------------------------------------- worker side


def assign_buffers(symbols: Sequence[str], timeframes: Sequence[Timeframe], workers: int) -> dict[tuple[str, Timeframe], int]:
    """Which worker owns each (symbol, timeframe) buffer; no buffer has two owners.

    With at least as many symbols as workers, a symbol's timeframes stay together (symbols
    dealt round robin): a burst of many symbols is what the stacked evaluation shares. With
    fewer symbols than workers, whole symbols would leave workers idle (one symbol: one worker
    for every timeframe, 2.3 ms at the top of each hour with the default ensemble, 1m to 1h, one
    after the other), so each symbol's timeframes are dealt round robin instead: 1m, 15m and 4h
    to one worker, 5m and 1h to the other, and a bar closing several timeframes computes them
    in parallel."""
    n = min(workers, max(1, len(symbols) * len(timeframes)))
    if len(symbols) >= n:
        return {(s, tf): i % n for i, s in enumerate(symbols) for tf in timeframes}
    return {unit: k % n for k, unit in enumerate((s, tf) for s in symbols for tf in timeframes)}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _keep_freed_memory() -> None:
    """Let this worker's allocator reuse freed memory instead of handing it back to the kernel.

    A burst allocates ~100 indicator arrays of 100–200 kB (window × symbols) and frees them when
    it ends. Above glibc's mmap threshold each is a fresh mmap whose every page faults on first
    touch (~300 faults, ~1 ms of kernel time per burst measured) and an munmap on free; glibc
    raises the threshold on its own after a while, but not reliably. Pinning both thresholds
    keeps the arrays in the heap (the worker's RSS is bounded by ``max_worker_rss_mb`` anyway).
    Other C libraries: nothing to tune, nothing done."""
    set_malloc_thresholds(32 * 1024 * 1024, 128 * 1024 * 1024)


def _worker_main(conn: Connection, layouts: list[BufferLayout], plan: SensorPlan, plugins: tuple[str, ...],
                 cpu: int | None = None) -> None:
    """Worker process: attach the rings, then answer tasks until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's business
    if cpu is not None:  # [sensors].pin_workers
        with contextlib.suppress(OSError):  # a CPU taken away meanwhile: run unbound rather than fail
            os.sched_setaffinity(0, {cpu})
    _keep_freed_memory()
    from sensors.registry import all_sensors, load_plugins

    load_plugins(plugins)
    specs = all_sensors()
    rings = {(lay.symbol, lay.timeframe): RingBuffer.attach(lay) for lay in layouts}
    # Everything loaded so far (modules, plan, rings) lives as long as the worker: frozen out of the
    # collector's reach, a full collection no longer walks it, which was a multi-ms spike in a burst's tail.
    gc.collect()
    gc.freeze()
    conn.send(("ready", os.getpid()))
    done = 0
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return  # the engine is gone: exit rather than linger as an orphan
            if msg[0] == "stop":
                return
            _, task_id, work = msg
            # one burst per timeframe: every symbol of this task that closed a bar of it, together
            by_tf: dict[str, tuple[list[str], list[int]]] = {}
            for symbol, items in work:
                for tf_value, index in items:
                    symbols, indices = by_tf.setdefault(tf_value, ([], []))
                    symbols.append(symbol)
                    indices.append(index)
            out = []
            # A burst makes arrays and tuples but no reference cycles: the collector is paused while it
            # runs so no collection lands inside one, and resumed before the worker waits for the next.
            gc.disable()
            for tf_value, (symbols, indices) in by_tf.items():
                tf = Timeframe(tf_value)
                r = evaluate_burst(plan.sensors_for(tf), specs, [rings[(sym, tf)] for sym in symbols], tf, indices)
                out.append((tf_value, tuple(symbols), r.open_times, r.signals.tobytes(), r.errors, r.stale))
            done += 1
            rss = _rss_mb() if done % _RSS_CHECK_EVERY == 0 else -1.0
            conn.send(("done", task_id, out, rss))
            gc.enable()
    finally:
        for ring in rings.values():
            ring.release()


# ------------------------------------------------------------------- engine side


@dataclass(eq=False)
class _Worker:
    slot: int
    process: BaseProcess
    conn: Connection
    ready: asyncio.Future[None]
    outstanding: dict[int, _Task] = field(default_factory=dict)
    tasks_done: int = 0
    rss_mb: float = 0.0
    retiring: bool = False
    lost: bool = False


@dataclass(eq=False)
class _Task:
    task_id: int
    work: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # (symbol, ((timeframe, bar index), …)), …
    future: asyncio.Future[list[tuple] | None]
    worker: _Worker


@dataclass(eq=False)
class PendingReadings:
    """Tasks sent by ``SensorPool.submit``, to be collected once."""

    started: float  # perf_counter when sent: the task timeout runs from here
    tasks: list[_Task]
    lost: list[tuple[str, tuple[tuple[str, int], ...]]]  # owed by a slot that gave up: missing


class SensorPool:
    """Sensor workers for the symbols of ``market`` (see the module docstring).

    Lifecycle: ``await start()`` → ``await evaluate(symbol, closed_timeframes)`` per closed bar
    → ``await stop()``. Must be used from one event loop (the engine's).
    """

    def __init__(
        self, market: MarketData, settings: SensorSettings, *, plugins: tuple[str, ...] = (),
        start_method: str = "forkserver",
    ) -> None:
        from sensors.registry import all_sensors, load_plugins

        load_plugins(plugins)
        self._specs = all_sensors()
        self.plan = build_plan(settings, self._specs)
        if self.plan.max_window > market.capacity:
            raise ValueError(f"market data keeps {market.capacity} bars, sensors need {self.plan.max_window}")
        self.market = market
        self.settings = settings
        self._plugins = plugins
        self._timeout_s = settings.task_timeout_ms / 1000.0
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(_PRELOAD)
        self._slot_of = assign_buffers(market.symbols, market.timeframes, worker_count(settings.workers))
        n = max(self._slot_of.values(), default=0) + 1
        self._workers: list[_Worker | None] = [None] * n
        self._retired: list[_Worker] = []
        self._early_deaths = [0] * n
        self._ids = itertools.count(1)
        self._error_logged: dict[str, tuple[float, int]] = {}
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # per timeframe, what every reading repeats; and the metric children, looked up once
        self._meta = {tf: tuple((s.name, s.tp_fraction, s.sl_fraction, s.context) for s in sensors)
                      for tf, sensors in self.plan.by_timeframe.items()}
        self._missing = {r: SENSOR_MISSING.labels(reason=r) for r in ("warmup", "error", "stale", "worker_lost")}

    # ----------------------------------------------------------------- lifecycle

    @property
    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w is not None and not w.lost and w.process.pid is not None]

    async def start(self) -> None:
        """Start every worker and wait until each has attached to its buffers."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        for slot in range(len(self._workers)):
            self._spawn(slot)
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                await asyncio.gather(*(w.ready for w in self._workers if w is not None))
        except BaseException:
            await self.stop()
            raise
        log.info("sensor pool: %d workers, %d sensor/timeframe pairs", len(self._workers),
                 sum(len(v) for v in self.plan.by_timeframe.values()))

    def _spawn(self, slot: int) -> _Worker:
        assert self._loop is not None
        layouts = [lay for lay in self.market.layouts() if self._slot_of[(lay.symbol, lay.timeframe)] == slot]
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child_conn, layouts, self.plan, self._plugins, self._cpu_of(slot)),
            name=f"casino-sensors-{slot}", daemon=True,  # daemon: never outlives the engine
        )
        proc.start()
        child_conn.close()
        ready: asyncio.Future[None] = self._loop.create_future()
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody waits
        worker = _Worker(slot, proc, parent_conn, ready)
        self._workers[slot] = worker
        self._loop.add_reader(parent_conn.fileno(), self._on_readable, worker)
        return worker

    def _cpu_of(self, slot: int) -> int | None:
        """The CPU a slot's worker is bound to (``pin_workers``), or None: not pinned, or more
        workers than the CPUs this process may use, or no affinity API (not Linux)."""
        if not self.settings.pin_workers or not hasattr(os, "sched_getaffinity"):
            return None
        cpus = sorted(os.sched_getaffinity(0))
        return cpus[slot] if len(self._workers) <= len(cpus) else None

    async def stop(self) -> None:
        """Stop all workers (kill those that do not exit in time) and reap them."""
        self._running = False
        # a lost worker was reaped when it was lost (its slot may hold it after a crash loop)
        workers = [w for w in self._workers if w is not None and not w.lost] + self._retired
        for w in workers:
            self._fail_outstanding(w, "stopped")
            self._detach(w)
            if w.process.is_alive():
                with contextlib.suppress(OSError):  # it died meanwhile: reaped below
                    w.conn.send(("stop",))
        deadline = time.monotonic() + 5.0
        while any(w.process.is_alive() for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for w in workers:
            self._reap(w)
        self._workers = [None] * len(self._workers)
        self._retired.clear()

    def _detach(self, w: _Worker) -> None:
        if self._loop is not None and not w.conn.closed:
            self._loop.remove_reader(w.conn.fileno())

    def _reap(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5.0)
        if not w.conn.closed:
            w.conn.close()
        if w.process.exitcode is not None:
            w.process.close()

    # ---------------------------------------------------------------- evaluation

    async def evaluate(self, symbol: str, closed: Sequence[Timeframe]) -> Sequence[SensorReading]:
        """Readings of every planned sensor for the bars of ``symbol`` that just closed.

        Call right after ``MarketData.append_closed`` returned ``closed``. Sensors not warmed
        up, ones that raised, and everything a lost or hung worker owed come back with
        ``signal=None``. For several symbols closing together use ``evaluate_many``.
        """
        return (await self.evaluate_many({symbol: closed})).get(symbol, ())

    async def evaluate_many(self, closed: Mapping[str, Sequence[Timeframe]]) -> dict[str, SymbolReadings]:
        """``evaluate`` for every symbol of a burst (symbol → the timeframes that just closed).

        One message per worker carries all its symbols, under one ``task_timeout_ms``: a worker
        that does not answer in time is killed and replaced and everything it owed is missing;
        the other workers' readings are kept. Symbols with nothing to evaluate are left out.
        Each symbol's readings come back as the workers' signal rows (``SymbolReadings``),
        made into reading objects when the engine first reads that symbol.
        """
        return await self.collect(self.submit(closed))

    def submit(self, closed: Mapping[str, Sequence[Timeframe]]) -> PendingReadings:
        """Send ``evaluate_many``'s tasks now, without waiting: the caller can do work of its own
        while the workers compute, then ``collect`` (once; the timeout runs from here)."""
        # per worker: (symbol, ((timeframe, bar index), …)) for its buffers (with fewer symbols
        # than workers, a symbol's timeframes may go to several workers)
        by_slot: dict[int, list[tuple[str, tuple[tuple[str, int], ...]]]] = {}
        slot_of, market, plan = self._slot_of, self.market, self.plan
        for symbol, tfs in closed.items():
            items: dict[int, list[tuple[str, int]]] = {}
            for tf in tfs:
                index = market.last_index(symbol, tf) if plan.sensors_for(tf) else -1
                if index >= 0:
                    items.setdefault(slot_of[(symbol, tf)], []).append((tf.value, index))
            for slot, slot_items in items.items():
                by_slot.setdefault(slot, []).append((symbol, tuple(slot_items)))
        pending = PendingReadings(time.perf_counter(), [], [])
        if not by_slot:
            return pending
        if not self._running:
            raise RuntimeError("sensor pool is not running")
        assert self._loop is not None
        for slot, jobs in by_slot.items():
            worker = self._workers[slot]
            assert worker is not None
            if worker.lost:  # its slot gave up respawning
                pending.lost.extend(jobs)
                continue
            task = _Task(next(self._ids), tuple(jobs), self._loop.create_future(), worker)
            worker.outstanding[task.task_id] = task
            pending.tasks.append(task)
        SENSOR_QUEUE_DEPTH.inc(len(pending.tasks))
        for task in pending.tasks:
            try:
                task.worker.conn.send(("eval", task.task_id, task.work))
            except OSError:
                self._lose(task.worker, "died")
        return pending

    async def collect(self, sent: PendingReadings) -> dict[str, SymbolReadings]:
        """The readings of a ``submit``: every symbol's, with what a lost or hung worker owed missing."""
        tasks, lost = sent.tasks, sent.lost
        out: dict[str, SymbolReadings] = {}
        pending = {task.future: task for task in tasks}

        def collect(done: set[asyncio.Future[list[tuple] | None]]) -> None:
            for future in done:
                task = pending.pop(future)
                results = future.result()
                if results is None:  # the worker was lost
                    lost.extend(task.work)
                else:
                    self._readings(results, out)

        try:
            try:
                remaining = self._timeout_s - (time.perf_counter() - sent.started)
                async with asyncio.timeout(max(0.0, remaining)):
                    while pending:
                        # build each worker's readings as soon as it answers, while the others
                        # still compute (the engine's share of a burst's latency)
                        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                        collect(done)
            except TimeoutError:
                for task in pending.values():
                    if not task.future.done() and task.task_id in task.worker.outstanding:
                        self._lose(task.worker, "hung")
                collect({f for f in pending if f.done()})
                for future, task in list(pending.items()):  # not answered (a lost worker's owed tasks)
                    del pending[future]
                    lost.extend(task.work)
        finally:
            SENSOR_QUEUE_DEPTH.dec(len(tasks))
        if tasks:
            SENSOR_SECONDS.observe(time.perf_counter() - sent.started)
        for symbol, items in lost:  # the worker was lost: everything it owed is missing
            readings = out.get(symbol)
            if readings is None:
                readings = out[symbol] = SymbolReadings(symbol)
            for tf_value, index in items:
                tf = Timeframe(tf_value)
                meta = self._meta[tf]
                readings.add(tf, self.market.ring(symbol, tf).open_time(index), meta, None)
                self._missing["worker_lost"].inc(len(meta))
        return out

    def _readings(self, results: list[tuple], out: dict[str, SymbolReadings]) -> None:
        """File a worker's compact answer (one signal matrix per timeframe) under each symbol of
        ``out`` as that symbol's row, and count what is missing and why."""
        for tf_value, symbols, open_times, raw, errors, stale in results:
            tf = Timeframe(tf_value)
            meta = self._meta[tf]
            n = len(meta)
            signals = np.frombuffer(raw, dtype=np.float64).reshape(len(symbols), n)
            nan_count = np.count_nonzero(np.isnan(signals), axis=1).tolist()
            if any(stale):
                signals = signals.copy()
            missing = {"warmup": 0, "error": 0, "stale": 0}
            for s in range(len(symbols)):
                if errors[s]:
                    self._count_errors(self.plan.sensors_for(tf), errors[s])
                if stale[s]:  # the window was overwritten while the worker read it: nothing is trustworthy
                    signals[s] = math.nan
                    missing["stale"] += n
                    continue
                missing["warmup"] += max(0, nan_count[s] - len(errors[s]))
                missing["error"] += len(errors[s])
            for s, symbol in enumerate(symbols):
                readings = out.get(symbol)
                if readings is None:
                    readings = out[symbol] = SymbolReadings(symbol)
                readings.add(tf, open_times[s], meta, signals[s])
            for reason, count in missing.items():
                if count:
                    self._missing[reason].inc(count)

    def _count_errors(self, sensors: tuple, errors: tuple[tuple[int, str], ...]) -> None:
        now = time.monotonic()
        for k, message in errors:
            name = sensors[k].name
            SENSOR_ERRORS.labels(sensor=name).inc()
            last, suppressed = self._error_logged.get(name, (-math.inf, 0))
            if now - last >= self.settings.error_log_interval_s:
                log.error("sensor %s raised (%d more since last report): %s", name, suppressed, message,
                          extra={"event": "sensor_error"})
                self._error_logged[name] = (now, 0)
            else:
                self._error_logged[name] = (last, suppressed + 1)

    # ------------------------------------------------------------ worker events

    def _on_readable(self, worker: _Worker) -> None:
        try:
            while not worker.conn.closed and worker.conn.poll():  # a retired worker's pipe closes mid-loop
                msg = worker.conn.recv()
                if msg[0] == "done":
                    self._on_done(worker, msg[1], msg[2], msg[3])
                elif msg[0] == "ready" and not worker.ready.done():
                    worker.ready.set_result(None)
        except (EOFError, OSError):
            self._lose(worker, "died")

    def _on_done(self, worker: _Worker, task_id: int, results: list[tuple], rss: float) -> None:
        task = worker.outstanding.pop(task_id, None)
        if task is not None and not task.future.done():
            task.future.set_result(results)
        worker.tasks_done += 1
        if rss >= 0:
            worker.rss_mb = rss
        if not worker.retiring and self._running:
            if worker.tasks_done >= self.settings.recycle_after_tasks:
                self._retire(worker, "tasks")
            elif worker.rss_mb > self.settings.max_worker_rss_mb:
                self._retire(worker, "rss")
        if worker.retiring and not worker.outstanding and not worker.conn.closed:
            self._finish_retirement(worker)
        elif self._retired:
            self._reap_retired(block=False)  # join recycled workers once they have exited

    def _retire(self, worker: _Worker, reason: str) -> None:
        """Route new tasks to a fresh worker; the old one finishes its queue, then stops."""
        worker.retiring = True
        self._retired.append(worker)
        SENSOR_WORKER_RESTARTS.labels(reason=f"recycle_{reason}").inc()
        log.info("recycling sensor worker %d (pid %s) after %d tasks, %.0f MB", worker.slot,
                 worker.process.pid, worker.tasks_done, worker.rss_mb)
        self._spawn(worker.slot)

    def _finish_retirement(self, worker: _Worker) -> None:
        self._detach(worker)
        with contextlib.suppress(OSError):  # it exited already; reaping below handles it
            worker.conn.send(("stop",))
        worker.conn.close()
        self._reap_retired(block=False)

    def _reap_retired(self, *, block: bool) -> None:
        for w in list(self._retired):
            if block or not w.process.is_alive():
                self._reap(w)
                self._retired.remove(w)

    def _lose(self, worker: _Worker, reason: str) -> None:
        """A worker died or hung: kill it, mark what it owed missing, replace it."""
        if worker.lost:
            return
        worker.lost = True
        self._detach(worker)
        log.error("sensor worker %d (pid %s) %s; replacing it", worker.slot, worker.process.pid, reason,
                  extra={"event": "sensor_worker_lost"})
        SENSOR_WORKER_RESTARTS.labels(reason=reason).inc()
        self._fail_outstanding(worker, reason)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5.0)
        worker.conn.close()
        worker.process.close()
        if worker in self._retired:
            self._retired.remove(worker)
        elif self._running and self._workers[worker.slot] is worker:
            early = not worker.ready.done() or worker.ready.exception() is not None
            self._early_deaths[worker.slot] = self._early_deaths[worker.slot] + 1 if early else 0
            if self._early_deaths[worker.slot] <= _MAX_EARLY_DEATHS:
                self._spawn(worker.slot)
            else:  # a crash loop: stop respawning; this slot's readings stay missing
                log.critical("sensor worker %d keeps dying before it is ready; giving up on it", worker.slot)
        self._reap_retired(block=False)

    def _fail_outstanding(self, worker: _Worker, reason: str) -> None:
        for task in list(worker.outstanding.values()):
            if not task.future.done():
                task.future.set_result(None)
        worker.outstanding.clear()
        if not worker.ready.done():
            worker.ready.set_exception(RuntimeError(f"sensor worker {worker.slot} {reason} before it was ready"))


class SymbolReadings(Sequence[SensorReading]):
    """One symbol's readings of a burst: the workers' signal rows (one per timeframe), turned
    into ``SensorReading`` objects the first time anything reads them.

    A 50-symbol burst holds 3,000+ readings. Built all at once they cost the engine ~1 ms after
    the last worker answers, before the first symbol can be decided; built per symbol they
    are made as the engine reaches each symbol (the same objects, the same total work). The
    rows are views of the worker's answer, which is immutable bytes: nothing can change them
    in between. ``len`` needs no objects."""

    __slots__ = ("symbol", "_parts", "_items", "_count")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._parts: list[tuple[Timeframe, int, tuple[tuple[str, float, float, bool], ...], np.ndarray | None]] = []
        self._items: list[SensorReading] | None = None
        self._count = 0

    def add(self, tf: Timeframe, open_time: int, meta: tuple[tuple[str, float, float, bool], ...],
            signals: np.ndarray | None) -> None:
        """One timeframe's readings: ``signals`` in ``meta``'s order (NaN = missing), or None
        when every one is missing (a lost worker)."""
        if self._items is not None:  # already read: keep the objects handed out, append to them
            self._items.extend(_build_readings((self.symbol,), tf, (open_time,), meta, signals))
        else:
            self._parts.append((tf, open_time, meta, signals))
        self._count += len(meta)

    def _built(self) -> list[SensorReading]:
        items = self._items
        if items is None:
            items = []
            # in timeframe order whichever worker answered first (a symbol's timeframes may be
            # spread over workers): the tracker opens votes in the order it reads them
            for tf, open_time, meta, signals in sorted(self._parts, key=lambda part: part[0].ms):
                items.extend(_build_readings((self.symbol,), tf, (open_time,), meta, signals))
            self._items, self._parts = items, []
        return items

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int | slice) -> Any:
        return self._built()[index]

    def __iter__(self) -> Iterator[SensorReading]:
        return iter(self._built())

    def __repr__(self) -> str:
        return f"SymbolReadings({self.symbol!r}, {self._count} readings)"


# SensorReading is a frozen slotted dataclass without __post_init__: its generated __init__ only
# stores the eight fields through object.__setattr__ (≈ 2.5 µs each, 8 ms for a 50-symbol
# burst). A burst's readings are made instead as bare objects whose slots are filled field by
# field through the slot descriptors, each field for all readings in one C-level ``map`` — the
# very same objects (a test compares them field by field) for ≈ 0.3 µs each.
_NEW_READING = object.__new__
_READING_FIELDS = ("sensor", "symbol", "timeframe", "open_time_ms", "signal", "tp_fraction", "sl_fraction", "context")
if tuple(f.name for f in dataclasses.fields(SensorReading)) != _READING_FIELDS:  # fail loudly, never half-built
    raise RuntimeError("SensorReading's fields changed: update core.sensor_pool._build_readings")
_SET_READING = tuple(getattr(SensorReading, name).__set__ for name in _READING_FIELDS)


def _build_readings(symbols: Sequence[str], tf: Timeframe, open_times: Sequence[int],
                    meta: tuple[tuple[str, float, float, bool], ...],
                    signals: np.ndarray | None) -> list[SensorReading]:
    """One reading per symbol × planned sensor (symbol-major), ``None`` (missing) where the signal
    is NaN, or everywhere when ``signals`` is None. ``signals`` holds ``len(symbols) × len(meta)``
    float64 values in that order."""
    n, count = len(meta), len(symbols) * len(meta)
    if signals is None:
        values: Iterable[float | None] = itertools.repeat(None)
    elif signals.size != count:
        raise ValueError(f"{signals.size} signals for {len(symbols)} symbols × {n} sensors")
    else:
        values = signals.ravel().astype(object)  # Python floats…
        values[np.isnan(signals.ravel())] = None  # …and NaN → missing, never 0
    # The readings hold no reference cycles: the collector has nothing to find among them, yet
    # thousands of new tracked objects would run it (and push its older generations) several
    # times per burst, ~2 ms in an engine holding a large heap. Paused while they are made.
    paused = gc.isenabled()
    gc.disable()
    try:
        out = _new_readings(count, symbols, tf, open_times, meta, values)
    finally:
        if paused:
            gc.enable()
    return out


def _new_readings(count: int, symbols: Sequence[str], tf: Timeframe, open_times: Sequence[int],
                  meta: tuple[tuple[str, float, float, bool], ...], values: Iterable[float | None]) -> list[SensorReading]:
    """``count`` bare readings, then each field for all of them in one C-level ``map``."""
    n = len(meta)
    out = list(map(_NEW_READING, itertools.repeat(SensorReading, count)))
    names, tps, sls, contexts = (list(column) for column in zip(*meta, strict=True)) if meta else ([], [], [], [])
    s_name, s_symbol, s_tf, s_open, s_signal, s_tp, s_sl, s_ctx = _SET_READING
    symbol_column = itertools.chain.from_iterable(map(itertools.repeat, symbols, itertools.repeat(n)))
    open_column = itertools.chain.from_iterable(map(itertools.repeat, open_times, itertools.repeat(n)))
    for setter, column in (
        (s_name, names * len(symbols)), (s_symbol, symbol_column), (s_tf, itertools.repeat(tf)),
        (s_open, open_column), (s_signal, values),
        (s_tp, tps * len(symbols)), (s_sl, sls * len(symbols)), (s_ctx, contexts * len(symbols)),
    ):
        _drain(map(setter, out, column))
    return out


def _drain(calls: Iterator[None]) -> None:
    """Run a lazy ``map`` to its end without keeping its results."""
    collections.deque(calls, maxlen=0)


def evaluate_local(
    market: MarketData, plan: SensorPlan, specs: dict, symbol: str, closed: Sequence[Timeframe]
) -> list[BarResult]:
    """The same work a worker does for one closed bar, in this process (benchmarks, tests)."""
    return [
        evaluate_bar(plan.sensors_for(tf), specs, market.ring(symbol, tf), tf, market.last_index(symbol, tf))
        for tf in closed if plan.sensors_for(tf) and market.last_index(symbol, tf) >= 0
    ]


def evaluate_burst_local(
    market: MarketData, plan: SensorPlan, specs: dict, closed: Mapping[str, Sequence[Timeframe]]
) -> list[BurstResult]:
    """The work the workers do for a burst (symbol → closed timeframes), all of it in this process."""
    by_tf: dict[Timeframe, list[str]] = {}
    for symbol, tfs in closed.items():
        for tf in tfs:
            if plan.sensors_for(tf) and market.last_index(symbol, tf) >= 0:
                by_tf.setdefault(tf, []).append(symbol)
    return [
        evaluate_burst(plan.sensors_for(tf), specs, [market.ring(s, tf) for s in symbols], tf,
                       [market.last_index(s, tf) for s in symbols])
        for tf, symbols in by_tf.items()
    ]
