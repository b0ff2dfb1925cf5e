"""The only place Casino reads time.

``LiveClock`` wraps the wall clock and the event loop's monotonic clock; ``FakeClock`` is
advanced by hand (tests) or by data (replays), and wakes sleepers whose deadline passed.
A ``ScaledClock`` runs faster than real time (paper sessions on recorded data).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class LiveClock:
    """Wall time for timestamps, monotonic time for durations."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Simulated time that runs ``speed`` times faster than real time from ``start_ms``."""

    def __init__(self, start_ms: int, speed: float, *, held: bool = False) -> None:
        """``held``: time stands at ``start_ms`` until ``release()`` (a simulator waiting for its
        client to be ready, so no recorded data plays unseen)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start_ms = start_ms
        self._speed = speed
        self._real_start = time.monotonic()
        self._held = held

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        """Start running from ``start_ms`` now (no effect unless held)."""
        if self._held:
            self._held = False
            self._real_start = time.monotonic()

    def now_ms(self) -> int:
        if self._held:
            return self._start_ms
        elapsed = time.monotonic() - self._real_start
        return self._start_ms + int(elapsed * self._speed * 1000)

    def time(self) -> float:
        return self.now_ms() / 1000

    def monotonic(self) -> float:
        if self._held:
            return 0.0
        return (time.monotonic() - self._real_start) * self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class FakeClock:
    """A clock that only moves when told to; ``sleep`` waits for simulated time.

    ``advance`` wakes every sleeper whose deadline has been reached, in deadline order,
    and yields to the loop so they run before ``advance`` returns.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms
        self._mono_origin_ms = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    def time(self) -> float:
        return self._now_ms / 1000

    def monotonic(self) -> float:
        return (self._now_ms - self._mono_origin_ms) / 1000

    def set_ms(self, now_ms: int) -> None:
        """Jump forward to ``now_ms`` (never backwards) without yielding to the loop."""
        if now_ms < self._now_ms:
            raise ValueError(f"FakeClock cannot go back from {self._now_ms} to {now_ms}")
        self._now_ms = now_ms
        self._wake_due()

    async def advance(self, seconds: float) -> None:
        """Move time forward and let the sleepers that became due run."""
        if seconds < 0:
            raise ValueError("cannot advance by a negative amount")
        self.set_ms(self._now_ms + round(seconds * 1000))
        # Several passes: a woken task may sleep again for 0 s or schedule follow-ups.
        for _ in range(3):
            await asyncio.sleep(0)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now_ms + max(1, round(seconds * 1000))
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline_ms(self) -> int | None:
        """Earliest deadline of a live sleeper (lets a replay jump straight to it)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now_ms:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
