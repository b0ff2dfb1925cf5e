"""Candlestick pattern sensors, all through TA-Lib's CDL functions.

TA-Lib answers +100/-100 (±200 for confirmed variants) on the bar that completes a pattern.
Signed patterns keep TA-Lib's sign; shapes TA-Lib reports without a side (dragonfly and
gravestone doji always give +100) get the side the pattern implies. Their warm-up is TA-Lib's
own lookback (the candle-size averages each pattern compares against).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import talib
import talib.abstract

from sensors.base import Bars, Family, live, sensor
from sensors.ta import direct, unwrapped

# name → (TA-Lib function, side: 0 = TA-Lib's sign, +1/-1 = fixed side, extra parameters)
PATTERNS: dict[str, tuple[str, int, dict[str, float]]] = {
    "cdl_engulfing": ("CDLENGULFING", 0, {}),
    "cdl_hammer": ("CDLHAMMER", 0, {}),
    "cdl_inverted_hammer": ("CDLINVERTEDHAMMER", 0, {}),
    "cdl_hanging_man": ("CDLHANGINGMAN", 0, {}),
    "cdl_shooting_star": ("CDLSHOOTINGSTAR", 0, {}),
    "cdl_morning_star": ("CDLMORNINGSTAR", 0, {"penetration": 0.3}),
    "cdl_evening_star": ("CDLEVENINGSTAR", 0, {"penetration": 0.3}),
    "cdl_three_white_soldiers": ("CDL3WHITESOLDIERS", 0, {}),
    "cdl_three_black_crows": ("CDL3BLACKCROWS", 0, {}),
    "cdl_doji_star": ("CDLDOJISTAR", 0, {}),
    "cdl_dragonfly_doji": ("CDLDRAGONFLYDOJI", 1, {}),
    "cdl_gravestone_doji": ("CDLGRAVESTONEDOJI", -1, {}),
    "cdl_harami": ("CDLHARAMI", 0, {}),
    "cdl_piercing": ("CDLPIERCING", 0, {}),
    "cdl_dark_cloud": ("CDLDARKCLOUDCOVER", 0, {"penetration": 0.5}),
    "cdl_three_inside": ("CDL3INSIDE", 0, {}),
    "cdl_three_outside": ("CDL3OUTSIDE", 0, {}),
    "cdl_marubozu": ("CDLMARUBOZU", 0, {}),
    "cdl_belt_hold": ("CDLBELTHOLD", 0, {}),
    "cdl_hikkake": ("CDLHIKKAKE", 0, {}),
}


def _lookback(function: str) -> int:
    return int(talib.abstract.Function(function).lookback)


def _make(function: str, side: int) -> Callable[..., np.ndarray]:
    call = unwrapped(getattr(talib, function))

    def pattern(b: Bars, **extra: float) -> np.ndarray:
        raw = call(b.open, b.high, b.low, b.close, **extra)
        out = np.divide(raw, 100.0, out=np.empty(raw.shape[0]))  # TA-Lib's integers, scaled in one pass
        if side != 0:
            np.abs(out, out=out)
            if side < 0:
                np.negative(out, out=out)
        return out

    pattern.__doc__ = f"TA-Lib {function} on the bar completing the pattern."
    return pattern


def _make_live(function: str, side: int) -> Callable[..., float]:
    """The last-bar twin: one symbol's window or a burst's stacked (W, S) windows. The shapes
    TA-Lib compares (bodies, shadows, their averages × constants) scale alike, so a burst's
    power-of-two scaling of a symbol's prices changes no answer."""
    call = direct(getattr(talib, function))

    def pattern_last(b: Bars, **extra: float) -> float:
        last = call(b.open, b.high, b.low, b.close, **extra)[-1]
        raw = last / 100.0 if last.ndim else float(last) / 100.0  # numpy's int32 / float: ~1.5 µs
        return raw if side == 0 else side * abs(raw)

    return pattern_last


for _name, (_function, _side, _extra) in PATTERNS.items():
    _warm = _lookback(_function)
    sensor(_name, Family.PATTERNS, params=_extra, warmup=lambda p, w=_warm: w, indicators=(_function,))(
        _make(_function, _side)
    )
    live(_name, stacked=True)(_make_live(_function, _side))
