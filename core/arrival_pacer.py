"""When a sensor worker should keep itself warm: around the next task it expects.

Closed bars reach a worker at a steady cadence (a 1m bar every 60 s live, every 0.5 s in a
paper session at speed 120). Between them the worker's caches go cold, and its next bar costs
~3× the compute of one back to back (``core.sensor_pool._Warmth``, which rehearses the last bar
in this window). ``ArrivalPacer`` learns the cadence from the arrivals themselves and gives a
short window around the next expected one. The window is as wide as the recent prediction
errors and never wider than ``MAX_HALF_WINDOW_S``; a cadence faster than ``MIN_PERIOD_S`` (a
replay feeding bars back to back) gets no window, so a worker never rehearses while the engine
needs the CPU.
"""

from __future__ import annotations

import collections
import itertools

MIN_PERIOD_S = 0.05
MAX_HALF_WINDOW_S = 0.02
MIN_HALF_WINDOW_S = 0.001
_KEPT = 8  # arrivals and prediction errors remembered


class ArrivalPacer:
    """Learns when tasks arrive; ``window()`` says when to stay awake for the next one."""

    def __init__(self) -> None:
        self._arrivals: collections.deque[float] = collections.deque(maxlen=_KEPT)
        self._errors: collections.deque[float] = collections.deque(maxlen=_KEPT)
        self._expected: float | None = None

    def arrived(self, now: float) -> None:
        """A task arrived at ``now`` (monotonic seconds)."""
        if self._expected is not None:
            self._errors.append(abs(now - self._expected))
        self._arrivals.append(now)
        period = self.period()
        self._expected = None if period is None else now + period

    def period(self) -> float | None:
        """The cadence: the shortest recent interval between arrivals (a pause or a missed bar
        only lengthens intervals), or None when there is none or it is faster than MIN_PERIOD_S."""
        if len(self._arrivals) < 3:
            return None
        shortest = min(b - a for a, b in itertools.pairwise(self._arrivals))
        return shortest if shortest >= MIN_PERIOD_S else None

    def window(self) -> tuple[float, float] | None:
        """(open, close) in monotonic seconds around the next expected arrival, or None."""
        if self._expected is None:
            return None
        spread = max(self._errors, default=MAX_HALF_WINDOW_S / 2)
        half = min(MAX_HALF_WINDOW_S, max(MIN_HALF_WINDOW_S, 2 * spread))
        return self._expected - half, self._expected + half
