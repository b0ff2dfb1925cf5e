"""Closed candles per symbol × timeframe in shared-memory ring buffers.

The engine process is the only writer. A closed base candle (1m) is validated, written to
its ring, and folded into the pending bar of every higher timeframe; a higher-timeframe
bar is written when the base candle that ends it arrives (the 1m bar opening at 09:59 closes
the 5m, 15m and 1h bars of 09:00–10:00 when those are kept). Pending bars live only in the
engine's memory: workers can read nothing but closed bars.

Aggregation follows ``core.history.resample`` (and Binance): first open, max high, min low,
last close, summed volume. A bar whose last base candle never came (a stream gap) is
closed by the first candle of a later bucket; the first bucket after start-up is written
only if its first base candle opened at the bucket's start (else it would not be a real bar).

Ring layout (one segment per symbol × timeframe): a small int64 header (bars written,
capacity) then the columns open time (int64), open, high, low, close, volume (float64),
each ``2 × capacity`` long. Every bar is written twice, at ``k % capacity`` and
``k % capacity + capacity``, so the last ``n ≤ capacity`` bars are always one contiguous
slice: workers hand TA-Lib zero-copy views.

Concurrency: the writer stores a bar before publishing the new count; a reader told to read
up to bar index ``k`` reads only slots of bars ≤ k, which the writer does not touch again
until ``capacity - n`` more bars have been written. ``RingBuffer.overwritten`` lets a reader
check afterwards that this did not happen (then its result is stale and must be dropped).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from core.metrics import BAD_CANDLES
from core.types import Candle, Timeframe

log = logging.getLogger(__name__)

_HEADER_INT64 = 8  # [0] bars written, [1] capacity, rest reserved
_COLUMNS = 6  # open time, open, high, low, close, volume


@dataclass(frozen=True, slots=True)
class BufferLayout:
    """Where a worker finds one ring: picklable, carries no arrays."""

    symbol: str
    timeframe: Timeframe
    shm_name: str
    capacity: int


class RingBuffer:
    """One symbol × timeframe ring in a shared-memory segment (see the module docstring)."""

    def __init__(self, shm: shared_memory.SharedMemory, capacity: int, *, owner: bool) -> None:
        self._shm = shm
        self.capacity = capacity
        self.owner = owner
        buf = shm.buf
        self._header = np.ndarray((_HEADER_INT64,), dtype=np.int64, buffer=buf)
        offset = _HEADER_INT64 * 8
        size = 2 * capacity
        self.times = np.ndarray((size,), dtype=np.int64, buffer=buf, offset=offset)
        cols = np.ndarray((_COLUMNS - 1, size), dtype=np.float64, buffer=buf, offset=offset + size * 8)
        self.open, self.high, self.low, self.close, self.volume = cols
        self._columns = cols

    @staticmethod
    def nbytes(capacity: int) -> int:
        return (_HEADER_INT64 + _COLUMNS * 2 * capacity) * 8

    @classmethod
    def create(cls, name: str, capacity: int) -> RingBuffer:
        if capacity < 2:
            raise ValueError(f"ring capacity must be at least 2, got {capacity}")
        shm = shared_memory.SharedMemory(name=name, create=True, size=cls.nbytes(capacity))
        ring = cls(shm, capacity, owner=True)
        ring._header[:] = 0
        ring._header[1] = capacity
        return ring

    @classmethod
    def attach(cls, layout: BufferLayout) -> RingBuffer:
        shm = shared_memory.SharedMemory(name=layout.shm_name, create=False)
        ring = cls(shm, layout.capacity, owner=False)
        if int(ring._header[1]) != layout.capacity:
            ring.release()
            raise ValueError(f"{layout.shm_name}: capacity {int(ring._header[1])} != expected {layout.capacity}")
        return ring

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def count(self) -> int:
        """Closed bars written so far (the newest has index ``count - 1``)."""
        return int(self._header[0])

    def append(self, open_time_ms: int, o: float, h: float, low: float, c: float, v: float) -> int:
        """Write one closed bar (writer only); returns its index."""
        k = int(self._header[0])
        for slot in (k % self.capacity, k % self.capacity + self.capacity):
            self.times[slot] = open_time_ms
            self._columns[:, slot] = (o, h, low, c, v)
        self._header[0] = k + 1  # publish after the data
        return k

    def span(self, end: int, n: int) -> slice:
        """Slots holding bars ``end - n + 1 … end`` (``n`` is clamped to what exists)."""
        if not 0 <= end < self.count:
            raise IndexError(f"bar {end} not written (count {self.count})")
        n = min(n, end + 1, self.capacity)
        start = (end - n + 1) % self.capacity
        return slice(start, start + n)

    def block(self, sl: slice) -> np.ndarray:
        """The price and volume columns of the slots ``sl`` as one (5, n) view: open, high, low,
        close, volume (one copy moves a whole window; see ``core.sensor_plan.evaluate_burst``)."""
        return self._columns[:, sl]

    def overwritten(self, end: int, n: int) -> bool:
        """True if bars written after ``end`` may have overwritten the window read."""
        return self.count - 1 - end > self.capacity - min(n, self.capacity)

    def open_time(self, index: int) -> int:
        return int(self.times[index % self.capacity])

    def release(self) -> None:
        """Drop this process's mapping (views into it must not be used afterwards)."""
        self._header = self.times = self._columns = None  # type: ignore[assignment]
        self.open = self.high = self.low = self.close = self.volume = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:  # a caller still holds a view; the mapping goes with the process
            log.debug("shared memory %s still referenced at close", self._shm.name)


def _unlink_all(names: list[str]) -> None:
    for name in names:
        try:
            seg = shared_memory.SharedMemory(name=name, create=False)
        except FileNotFoundError:
            continue
        seg.close()
        seg.unlink()


@dataclass(slots=True)
class _Pending:
    bucket: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    valid: bool


class MarketData:
    """Ring buffers of closed bars for ``symbols`` × ``timeframes`` (the smallest is the base).

    Only the engine process writes (``append_closed``); workers attach read-only through
    ``layouts()``. ``close()`` unlinks every segment (also run at garbage collection / exit).
    """

    def __init__(self, symbols: Iterable[str], timeframes: Sequence[Timeframe], capacity: int) -> None:
        tfs = sorted(set(timeframes), key=lambda t: t.ms)
        if not tfs:
            raise ValueError("at least one timeframe is needed")
        self.base = tfs[0]
        for tf in tfs[1:]:
            if tf.ms % self.base.ms:
                raise ValueError(f"{tf.value} is not a multiple of the base timeframe {self.base.value}")
        self.timeframes: tuple[Timeframe, ...] = tuple(tfs)
        self.higher: tuple[Timeframe, ...] = tuple(tfs[1:])
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        self.capacity = capacity
        token = f"casino-{os.getpid()}-{secrets.token_hex(4)}"
        self._rings: dict[tuple[str, Timeframe], RingBuffer] = {}
        self._names: list[str] = []
        self._finalizer = weakref.finalize(self, _unlink_all, self._names)
        try:
            for i, symbol in enumerate(self.symbols):
                for tf in self.timeframes:
                    name = f"{token}-{i}-{tf.value}"
                    self._rings[(symbol, tf)] = RingBuffer.create(name, capacity)
                    self._names.append(name)
        except Exception:
            self.close()
            raise
        self._pending: dict[tuple[str, Timeframe], _Pending] = {}
        self._last_base: dict[str, int] = {}
        self._seen: set[str] = set()  # symbols that had a base candle (later partial buckets are real)

    # ------------------------------------------------------------------ writing

    def append_closed(self, candle: Candle) -> tuple[Timeframe, ...]:
        """Validate and store a closed base candle; returns the timeframes whose bar closed
        (base first, then higher ones ascending), or () when the candle was rejected."""
        if candle.timeframe is not self.base:
            return self._reject("timeframe", candle.symbol, candle.open_time_ms,
                                f"{candle.timeframe.value} candle, base is {self.base.value}")
        if not candle.closed:
            return self._reject("not_closed", candle.symbol, candle.open_time_ms, "bar still open")
        return self.append_values(
            candle.symbol, candle.open_time_ms, float(candle.open), float(candle.high),
            float(candle.low), float(candle.close), float(candle.volume),
        )

    def append_values(
        self, symbol: str, open_time_ms: int, o: float, h: float, low: float, c: float, v: float
    ) -> tuple[Timeframe, ...]:
        """``append_closed`` for plain numbers (replays skip building Candle records)."""
        reason = self._check(symbol, open_time_ms, o, h, low, c, v)
        if reason is not None:
            return self._reject(reason[0], symbol, open_time_ms, reason[1])
        self._last_base[symbol] = open_time_ms
        self._rings[(symbol, self.base)].append(open_time_ms, o, h, low, c, v)
        closed = [self.base]
        end = open_time_ms + self.base.ms
        for tf in self.higher:
            bucket = open_time_ms - open_time_ms % tf.ms
            key = (symbol, tf)
            pending = self._pending.get(key)
            if pending is not None and pending.bucket != bucket:
                # the bucket's last base candle never came (gap): it closed anyway
                self._emit(key, pending, closed, tf)
                pending = None
            if pending is None:
                started = bucket == open_time_ms or symbol in self._seen
                self._pending[key] = pending = _Pending(bucket, o, h, low, c, v, started)
            else:
                pending.high = max(pending.high, h)
                pending.low = min(pending.low, low)
                pending.close = c
                pending.volume += v
            if end == bucket + tf.ms:
                self._emit(key, pending, closed, tf)
        self._seen.add(symbol)
        return tuple(closed)

    def seed(self, symbol: str, timeframe: Timeframe, candles: Sequence[Candle]) -> int:
        """Write warm-up history of a HIGHER timeframe straight into its ring.

        Only before the symbol's first base candle (later, higher bars come from base closes);
        each bar must close before the first base candle that will follow. Bad or
        out-of-order bars are rejected and counted like live ones. Returns bars written.
        """
        if timeframe not in self.higher:
            raise ValueError(f"seed() is for higher timeframes, not {timeframe.value}")
        if symbol in self._seen:
            raise RuntimeError(f"{symbol}: seed {timeframe.value} history before the first base candle")
        ring = self._rings[(symbol, timeframe)]
        written = 0
        for c in candles:
            values = (float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
            o, h, low, cl, v = values
            last = ring.open_time(ring.count - 1) if ring.count else None
            if c.timeframe is not timeframe or not c.closed:
                self._reject("timeframe", symbol, c.open_time_ms, f"seed of {timeframe.value} got {c.timeframe.value}")
                continue
            if not all(math.isfinite(x) for x in values) or h < max(o, cl) or low > min(o, cl) or low <= 0 or v < 0:
                self._reject("inconsistent", symbol, c.open_time_ms, f"o={o} h={h} l={low} c={cl} v={v}")
                continue
            if c.open_time_ms % timeframe.ms or (last is not None and c.open_time_ms <= last):
                self._reject("non_monotonic", symbol, c.open_time_ms, "seed bars must be aligned and increasing")
                continue
            ring.append(c.open_time_ms, o, h, low, cl, v)
            written += 1
        return written

    def _emit(self, key: tuple[str, Timeframe], p: _Pending, closed: list[Timeframe], tf: Timeframe) -> None:
        del self._pending[key]
        if p.valid:
            self._rings[key].append(p.bucket, p.open, p.high, p.low, p.close, p.volume)
            if tf not in closed:
                closed.append(tf)

    def _check(
        self, symbol: str, t: int, o: float, h: float, low: float, c: float, v: float
    ) -> tuple[str, str] | None:
        if (symbol, self.base) not in self._rings:
            return "unknown_symbol", "symbol not configured"
        if not all(math.isfinite(x) for x in (o, h, low, c, v)):
            return "non_finite", f"o={o} h={h} l={low} c={c} v={v}"
        if h < max(o, c) or low > min(o, c) or low <= 0 or v < 0:
            return "inconsistent", f"o={o} h={h} l={low} c={c} v={v}"
        if t % self.base.ms:
            return "misaligned", f"open time not aligned to {self.base.value}"
        last = self._last_base.get(symbol)
        if last is not None and t <= last:
            return "non_monotonic", f"open time {t} not after {last}"
        return None

    def _reject(self, reason: str, symbol: str, open_time_ms: int, detail: str) -> tuple[Timeframe, ...]:
        BAD_CANDLES.labels(reason=reason).inc()
        log.warning("rejected candle %s @%d (%s): %s", symbol, open_time_ms, reason, detail,
                    extra={"symbol": symbol, "event": "bad_candle"})
        return ()

    # ------------------------------------------------------------------ reading

    def ring(self, symbol: str, timeframe: Timeframe) -> RingBuffer:
        return self._rings[(symbol, timeframe)]

    def last_index(self, symbol: str, timeframe: Timeframe) -> int:
        """Index of the newest closed bar (-1 when none)."""
        return self._rings[(symbol, timeframe)].count - 1

    def window(self, symbol: str, timeframe: Timeframe, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the last ``n`` closed bars: (open time, open, high, low, close, volume)."""
        ring = self._rings[(symbol, timeframe)]
        if ring.count == 0:
            empty = np.empty(0)
            return np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty
        sl = ring.span(ring.count - 1, n)
        return (ring.times[sl].copy(), ring.open[sl].copy(), ring.high[sl].copy(), ring.low[sl].copy(),
                ring.close[sl].copy(), ring.volume[sl].copy())

    def layouts(self) -> list[BufferLayout]:
        return [BufferLayout(s, tf, r.name, r.capacity) for (s, tf), r in self._rings.items()]

    def segment_names(self) -> list[str]:
        return list(self._names)

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Unmap and unlink every segment (idempotent)."""
        for ring in self._rings.values():
            ring.release()
        self._rings.clear()
        self._finalizer()

    def __enter__(self) -> MarketData:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
