"""Swing pivots are the extreme of the 2k + 1 bars centred on them, and their level is that extreme."""

from __future__ import annotations

import numpy as np

from sensors.base import Bars
from sensors.batch import live_value
from sensors.registry import get


def _one_peak(n: int = 30, peak: int = 10) -> Bars:
    """Highs rising to a single swing high of 10 at ``peak``, then falling 0.1 per bar."""
    i = np.arange(n, dtype=np.float64)
    high = np.where(i <= peak, 5.0 + 0.5 * i, 10.0 - 0.1 * (i - peak))
    low = high - 1.0
    close = high - 0.5
    return Bars(close.copy(), high, low, close, np.full(n, 100.0))


def test_sr_break_breaks_the_swing_high_itself_not_a_later_bar() -> None:
    spec = get("sr_break")
    b = _one_peak()
    last = len(b) - 1
    b.close[last] = b.open[last] = 9.5  # above every high since the peak, below the peak (10)
    b.high[last] = 9.6
    out = spec.compute(b)
    assert out[last] == 0.0  # resistance is 10: not broken
    assert live_value(spec, spec.defaults, b, last) == 0.0
    b.close[last] = b.open[last] = b.high[last] = 10.5  # now above the swing high
    out = spec.compute(b)
    assert out[last] == 1.0 and live_value(spec, spec.defaults, b, last) == 1.0
