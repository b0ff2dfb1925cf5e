"""Server time: Binance rejects timestamps outside recvWindow with -1021.

Each sync takes a few ``GET /fapi/v1/time`` samples, each corrected by half its round trip, and
anchors on the sample with the median offset. It is refreshed periodically and on demand after
a -1021 (BINANCE.md §5). Between syncs, time is carried forward on the local clock's monotonic
time, so a wall-clock step (NTP) on this machine does not move the timestamps we send.

A server clock that runs faster than ours — the simulated Binance at a speed factor, when the
engine forgot to hand the connector the sim's ``ScaledClock`` — would make a fixed offset drift
by (speed − 1) seconds per second. So each sync also measures the server clock's rate against
the previous sync; when it is clearly above 1 (by more than ``min_rate_gain`` and three times the
measurement's own uncertainty, the two round trips over the span) and two consecutive
measurements agree within 10 %, timestamps advance at that rate. A real exchange clock never
qualifies (its rate is 1 to a few ppm), so live trading always uses a plain offset; a slower,
stopped or irregularly stepped server clock (a manually advanced simulator) is not extrapolated
either, and -1021 → resync → one retry covers it. Paper mode should still pass the sim's own
clock (see ``exchanges/binance/client.py``): then the offset is ~0 and the rate exactly 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import ExchangeError
from core.ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Anchor:
    """One synced instant: local monotonic ms ↔ server ms, and the sample's round trip."""

    local_ms: float
    server_ms: float
    rtt_ms: float


class TimeSync:
    """``timestamp_ms`` is the server's time now, as requests must carry it."""

    def __init__(
        self,
        clock: Clock,
        fetch_server_time_ms: Callable[[], Awaitable[int]],
        *,
        samples: int = 5,
        interval_s: float = 300.0,
        min_rate_gain: float = 0.05,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be ≥ 1")
        self._clock = clock
        self._fetch = fetch_server_time_ms
        self._samples = samples
        self._interval_s = interval_s
        self._min_rate_gain = min_rate_gain
        self._anchor: _Anchor | None = None
        self._rate = 1.0
        self._candidate: float | None = None  # a fast rate seen once, adopted when seen again
        self._lock = asyncio.Lock()

    def _local_ms(self) -> float:
        return self._clock.monotonic() * 1000.0

    @property
    def offset_ms(self) -> int:
        """Server time − local time, now."""
        return self.timestamp_ms() - self._clock.now_ms()

    @property
    def rate(self) -> float:
        """Server milliseconds per local millisecond (1.0 unless the server clock runs fast)."""
        return self._rate

    @property
    def synced(self) -> bool:
        return self._anchor is not None

    def timestamp_ms(self) -> int:
        """Local time moved onto the server's clock."""
        a = self._anchor
        if a is None:
            return self._clock.now_ms()
        return round(a.server_ms + self._rate * (self._local_ms() - a.local_ms))

    def to_local_ms(self, server_ms: int) -> int:
        """A server instant (a ban's end) on the local clock's ``now_ms`` scale."""
        return self._clock.now_ms() + round((server_ms - self.timestamp_ms()) / self._rate)

    async def sync(self) -> int:
        """Measure now (median of ``samples``); returns the offset in ms."""
        async with self._lock:
            taken: list[_Anchor] = []
            for _ in range(self._samples):
                sent = self._local_ms()
                server = await self._fetch()
                received = self._local_ms()
                taken.append(_Anchor((sent + received) / 2, float(server), received - sent))
            taken.sort(key=lambda s: s.server_ms - s.local_ms)
            anchor = taken[(len(taken) - 1) // 2] if len(taken) % 2 else _median_pair(taken)
            self._rate = self._measure_rate(self._anchor, anchor)
            self._anchor = anchor
            offset = self.offset_ms
            log.info("server time offset %d ms (median of %d samples)", offset, self._samples)
            return offset

    def _measure_rate(self, previous: _Anchor | None, current: _Anchor) -> float:
        if previous is None:
            return self._rate
        span = current.local_ms - previous.local_ms
        if span <= 0:
            return self._rate
        observed = (current.server_ms - previous.server_ms) / span
        uncertainty = (current.rtt_ms + previous.rtt_ms) / span
        if observed - 1.0 <= max(self._min_rate_gain, 3 * uncertainty):
            self._candidate = None
            return 1.0
        candidate, self._candidate = self._candidate, observed
        if candidate is None or abs(observed - candidate) > 0.1 * candidate:
            return self._rate if abs(observed - self._rate) <= 0.1 * self._rate else 1.0
        if abs(observed - self._rate) > 0.01 * self._rate:
            log.warning("the server clock runs %.2f× faster than ours (a simulated clock?): timestamps "
                        "follow it; pass the simulator's clock to the connector instead", observed)
        return observed

    async def run(self) -> None:
        """Refresh forever every ``interval_s``; a failed refresh keeps the old offset."""
        while True:
            await self._clock.sleep(self._interval_s)
            try:
                await self.sync()
            except ExchangeError as exc:
                log.warning("server time refresh failed, keeping offset %d ms: %s", self.offset_ms, exc)


def _median_pair(ordered: list[_Anchor]) -> _Anchor:
    """The mean of the two middle samples (by offset) of an even-sized list."""
    lo, hi = ordered[len(ordered) // 2 - 1], ordered[len(ordered) // 2]
    return _Anchor((lo.local_ms + hi.local_ms) / 2, (lo.server_ms + hi.server_ms) / 2,
                   max(lo.rtt_ms, hi.rtt_ms))

