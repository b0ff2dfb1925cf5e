"""Server-time offset: Binance rejects timestamps outside recvWindow with -1021.

The offset is the median of a few ``GET /fapi/v1/time`` samples, each corrected by half its
round trip; it is refreshed periodically and on demand after a -1021 (BINANCE.md §5).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Awaitable, Callable

from core.errors import ExchangeError
from core.ports import Clock

log = logging.getLogger(__name__)


class TimeSync:
    """Keeps ``offset_ms`` = server time − local time; ``timestamp_ms`` is what requests carry."""

    def __init__(
        self,
        clock: Clock,
        fetch_server_time_ms: Callable[[], Awaitable[int]],
        *,
        samples: int = 5,
        interval_s: float = 300.0,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be ≥ 1")
        self._clock = clock
        self._fetch = fetch_server_time_ms
        self._samples = samples
        self._interval_s = interval_s
        self._offset_ms = 0
        self._last_sync_ms: int | None = None
        self._lock = asyncio.Lock()

    @property
    def offset_ms(self) -> int:
        return self._offset_ms

    @property
    def synced(self) -> bool:
        return self._last_sync_ms is not None

    def timestamp_ms(self) -> int:
        """Local time moved onto the server's clock."""
        return self._clock.now_ms() + self._offset_ms

    async def sync(self) -> int:
        """Measure the offset now (median of ``samples``); returns it."""
        async with self._lock:
            offsets: list[float] = []
            for _ in range(self._samples):
                sent = self._clock.now_ms()
                server = await self._fetch()
                received = self._clock.now_ms()
                offsets.append(server - (sent + received) / 2)
            self._offset_ms = round(statistics.median(offsets))
            self._last_sync_ms = self._clock.now_ms()
            log.info("server time offset %d ms (median of %d samples)", self._offset_ms, self._samples)
            return self._offset_ms

    async def run(self) -> None:
        """Refresh forever every ``interval_s``; a failed refresh keeps the old offset."""
        while True:
            await self._clock.sleep(self._interval_s)
            try:
                await self.sync()
            except ExchangeError as exc:
                log.warning("server time refresh failed, keeping offset %d ms: %s", self._offset_ms, exc)
