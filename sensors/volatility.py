"""Volatility and band sensors: Bollinger, Keltner, Donchian, ATR expansion, z-score."""

from __future__ import annotations

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, ema_settle, live, sensor, wilder_settle
from sensors.shape import (
    above, below, diff1, float1, min1, missing1, nan1, nan_if, price1, ratio, safe_div, safe_div1, sign1,
    where1,
)


def _beyond(close: np.ndarray, upper: np.ndarray, lower: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """+ when close is above ``upper``, - below ``lower``: 0.5 at the band, 1 one ``unit`` beyond.

    Closes outside the bands are a small minority: the strengths are computed at those bars only
    (the same arithmetic per bar as over whole arrays)."""
    out = np.zeros(close.shape[0])
    # beyond a band by more than a tie implies beyond it at all: the tie test runs on those few
    over = np.flatnonzero(close > upper)
    over = over[above(close[over], upper[over])]
    under = np.flatnonzero(close < lower)
    under = under[below(close[under], lower[under])]
    under = np.setdiff1d(under, over, assume_unique=True)  # above the upper band wins (inverted bands)
    out[over] = np.minimum(1.0, 0.5 + safe_div(close[over] - upper[over], unit[over]))
    out[under] = -np.minimum(1.0, 0.5 + safe_div(lower[under] - close[under], unit[under]))
    return nan_if(out, upper, lower, unit)


@sensor("bb_touch", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0},
        warmup=lambda p: p["period"] - 1, indicators=("BBANDS",))
def bb_touch(b: Bars, period: int, stdevs: float) -> np.ndarray:
    """Close outside a Bollinger band, faded (mean reversion)."""
    upper, middle, lower = ta.BBANDS(b.close, period, stdevs, stdevs, 0)
    unit = upper - middle
    unit /= stdevs
    out = _beyond(b.close, upper, lower, unit)
    return np.negative(out, out=out)


@sensor("bb_squeeze", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0, "keltner": 1.5},
        warmup=lambda p: p["period"] + 1, settle=lambda p: max(ema_settle(p["period"]), wilder_settle(p["period"])),
        indicators=("BBANDS", "EMA", "ATR"))
def bb_squeeze(b: Bars, period: int, stdevs: float, keltner: float) -> np.ndarray:
    """Squeeze release: Bollinger bands leave the Keltner channel; vote the breakout side."""
    upper, _, lower = ta.BBANDS(b.close, period, stdevs, stdevs, 0)
    atr = ta.ATR(b.high, b.low, b.close, period)
    width = upper - lower
    squeezed = width < 2.0 * keltner * atr
    out = np.zeros(width.shape[0])
    # released: squeezed at the previous bar, not at this one (a handful of bars)
    released = np.flatnonzero(squeezed[:-1] > squeezed[1:]) + 1
    move = b.close[released] - ta.EMA(b.close, period)[released]
    out[released] = np.sign(move)
    missing = np.isnan(upper)
    atr_missing = np.isnan(atr)
    missing |= atr_missing
    missing[0] = True  # no previous bar
    missing[1:] |= atr_missing[:-1]
    np.copyto(out, np.nan, where=missing)
    return out


@sensor("bb_rejection", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0},
        warmup=lambda p: p["period"], indicators=("BBANDS",))
def bb_rejection(b: Bars, period: int, stdevs: float) -> np.ndarray:
    """Previous close outside a band, this close back inside it: vote the way back in."""
    upper, _, lower = ta.BBANDS(b.close, period, stdevs, stdevs, 0)
    close = b.close
    out = np.empty(close.shape[0])
    out[:1] = np.nan  # no previous bar
    # bar i against bar i - 1 through slices; a close exactly at a band is a tie, not a side
    # (flat markets put closes on the bands, which rounding would decide either way)
    up = below(close[:-1], lower[:-1]) & above(close[1:], lower[1:])
    down = above(close[:-1], upper[:-1]) & below(close[1:], upper[1:])
    np.subtract(up, down, out=out[1:], dtype=np.float64)
    nan_if(out[1:], upper[:-1], lower[:-1], upper[1:])
    return out


@sensor("keltner_breakout", Family.VOLATILITY, params={"period": 20, "atr": 10, "mult": 2.0},
        warmup=lambda p: max(p["period"] - 1, p["atr"]),
        settle=lambda p: max(ema_settle(p["period"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR"))
def keltner_breakout(b: Bars, period: int, atr: int, mult: float) -> np.ndarray:
    """Close outside the Keltner channel, followed (breakout)."""
    mid = ta.EMA(b.close, period)
    a = ta.ATR(b.high, b.low, b.close, atr)
    half = mult * a
    return _beyond(b.close, mid + half, np.subtract(mid, half, out=half), a)


@sensor("donchian_breakout", Family.VOLATILITY, params={"period": 20}, warmup=lambda p: p["period"],
        indicators=("MAX", "MIN"))
def donchian_breakout(b: Bars, period: int) -> np.ndarray:
    """Close beyond the previous ``period`` bars' highest high / lowest low."""
    upper, lower = ta.MAX(b.high, period), ta.MIN(b.low, period)
    close = b.close[1:]
    out = np.empty(b.close.shape[0])
    out[:1] = np.nan  # no previous bar
    # this close against the channel up to the previous bar (slices, not shifted copies)
    np.subtract(close > upper[:-1], close < lower[:-1], out=out[1:], dtype=np.float64)
    nan_if(out[1:], upper[:-1], lower[:-1])
    return out


def _spike(level: np.ndarray, threshold: float, b: Bars, graded: bool) -> np.ndarray:
    """The bar's direction where ``level`` (a ratio to its average) exceeds ``threshold``, else 0,
    NaN where ``level`` is NaN; ``graded``: times min(1, (level - 1) / threshold). Only the few
    spiking bars are computed (the same arithmetic per bar as over whole arrays)."""
    out = level * 0.0  # 0, NaN where not warmed up (level ≥ 0: never -0)
    spikes = np.flatnonzero(above(level, threshold))  # a level exactly at the threshold is a tie
    side = np.sign(b.close[spikes] - b.open[spikes])
    if graded:
        side *= np.minimum(1.0, (level[spikes] - 1.0) / threshold)
    out[spikes] = side
    return out


@sensor("atr_expansion", Family.VOLATILITY, params={"atr": 14, "baseline": 50, "threshold": 1.5},
        warmup=lambda p: p["atr"] + p["baseline"] - 1, settle=lambda p: wilder_settle(p["atr"]),
        indicators=("ATR", "SMA"))
def atr_expansion(b: Bars, atr: int, baseline: int, threshold: float) -> np.ndarray:
    """ATR well above its own average: follow the direction of the expanding bar."""
    a = ta.ATR(b.high, b.low, b.close, atr)
    return _spike(ratio(a, ta.SMA(a, baseline)), threshold, b, graded=True)


@sensor("zscore", Family.VOLATILITY, params={"period": 20}, warmup=lambda p: p["period"] - 1,
        indicators=("SMA", "STDDEV"))
def zscore(b: Bars, period: int) -> np.ndarray:
    """Distance of close from its mean in standard deviations, faded (3 σ = full vote)."""
    z = b.close - ta.SMA(b.close, period)
    ratio(z, ta.STDDEV(b.close, period, 1.0), out=z)
    return np.divide(z, -3.0, out=z)  # -z / 3, exactly


@sensor("tr_spike", Family.VOLATILITY, params={"period": 20, "threshold": 2.5},
        warmup=lambda p: p["period"], indicators=("TRANGE", "SMA"))
def tr_spike(b: Bars, period: int, threshold: float) -> np.ndarray:
    """A true range several times its average: follow the bar's direction."""
    tr = ta.TRANGE(b.high, b.low, b.close)
    return _spike(ratio(tr, ta.SMA(tr, period)), threshold, b, graded=False)


# ------------------------------------------------------------------ live twins (last bar only)
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``).


def _beyond1(close: float, upper: float, lower: float, unit: float) -> float:
    """``_beyond`` at one bar (ties judged in the symbol's own price units, see ``price1``)."""
    close, upper, lower, unit = price1(close, upper, lower, unit)
    over = min1(1.0, 0.5 + safe_div1(close - upper, unit))
    under = min1(1.0, 0.5 + safe_div1(lower - close, unit))
    out = where1(diff1(close, upper) > 0, over, where1(diff1(close, lower) < 0, -under, 0.0))
    return missing1(nan1(upper, lower, unit), out)


@live("bb_touch", stacked=True)
def _bb_touch(b: Bars, period: int, stdevs: float) -> float:
    upper, middle, lower = ta.BBANDS(b.close, period, stdevs, stdevs, 0)
    return -_beyond1(b.close[-1], upper[-1], lower[-1], (upper[-1] - middle[-1]) / stdevs)


@live("bb_squeeze", stacked=True)
def _bb_squeeze(b: Bars, period: int, stdevs: float, keltner: float) -> float:
    # The bands are a rolling window: their last two values read only the last period + 1 closes.
    # The window (~600 bars) is for the ATR/EMA; bands over all of it cost ~12× more (a burst
    # runs BBANDS symbol by symbol, ``ta._OWN_SEGMENT``) for the same values — the same
    # short-window bands bb_touch and bb_rejection read (the parity tests and
    # bench/parity_audit.py hold all three to batch mode within 1e-9).
    upper, _, lower = ta.BBANDS(b.close[-(period + 1):], period, stdevs, stdevs, 0)
    atr = ta.ATR(b.high, b.low, b.close, period)
    squeezed = (upper[-1] - lower[-1]) < 2.0 * keltner * atr[-1]
    was_squeezed = (upper[-2] - lower[-2]) < 2.0 * keltner * atr[-2]
    released = where1(squeezed, False, was_squeezed)
    out = where1(released, sign1(b.close[-1] - ta.EMA(b.close, period)[-1]), 0.0)
    return missing1(nan1(upper[-1], atr[-1], atr[-2]), out)


@live("bb_rejection", stacked=True)
def _bb_rejection(b: Bars, period: int, stdevs: float) -> float:
    upper, _, lower = ta.BBANDS(b.close, period, stdevs, stdevs, 0)
    pc, c, lower2, lower1, upper2, upper1 = price1(b.close[-2], b.close[-1], lower[-2], lower[-1], upper[-2], upper[-1])
    up = (diff1(pc, lower2) < 0) & (diff1(c, lower1) > 0)
    down = (diff1(pc, upper2) > 0) & (diff1(c, upper1) < 0)
    out = float1(up) - float1(down)
    return missing1(nan1(upper[-2], lower[-2], upper[-1]), out)


@live("keltner_breakout", stacked=True)
def _keltner_breakout(b: Bars, period: int, atr: int, mult: float) -> float:
    mid = ta.EMA(b.close, period)[-1]
    a = ta.ATR(b.high, b.low, b.close, atr)[-1]
    return _beyond1(b.close[-1], mid + mult * a, mid - mult * a, a)


@live("donchian_breakout", stacked=True)
def _donchian_breakout(b: Bars, period: int) -> float:
    upper, lower = ta.MAX(b.high, period)[-2], ta.MIN(b.low, period)[-2]
    return missing1(nan1(upper, lower), float1(b.close[-1] > upper) - float1(b.close[-1] < lower))


@live("atr_expansion", stacked=True)
def _atr_expansion(b: Bars, atr: int, baseline: int, threshold: float) -> float:
    a = ta.ATR(b.high, b.low, b.close, atr)
    ratio = safe_div1(a[-1], ta.SMA(a, baseline)[-1])
    spike = diff1(ratio, threshold) > 0
    out = where1(spike, sign1(b.close[-1] - b.open[-1]) * min1(1.0, (ratio - 1.0) / threshold), 0.0)
    return missing1(nan1(ratio), out)


@live("zscore", stacked=True)
def _zscore(b: Bars, period: int) -> float:
    z = safe_div1(b.close[-1] - ta.SMA(b.close, period)[-1], ta.STDDEV(b.close, period, 1.0)[-1])
    return -z / 3.0


@live("tr_spike", stacked=True)
def _tr_spike(b: Bars, period: int, threshold: float) -> float:
    tr = ta.TRANGE(b.high, b.low, b.close)
    ratio = safe_div1(tr[-1], ta.SMA(tr, period)[-1])
    return missing1(nan1(ratio), where1(diff1(ratio, threshold) > 0, sign1(b.close[-1] - b.open[-1]), 0.0))
