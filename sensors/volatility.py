"""Volatility and band sensors: Bollinger, Keltner, Donchian, ATR expansion, z-score."""

from __future__ import annotations

import numpy as np
import talib

from sensors.base import Bars, Family, ema_settle, sensor, wilder_settle
from sensors.shape import diff, nan_if, prev, safe_div


def _beyond(close: np.ndarray, upper: np.ndarray, lower: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """+ when close is above ``upper``, - below ``lower``: 0.5 at the band, 1 one ``unit`` beyond."""
    over = np.minimum(1.0, 0.5 + safe_div(close - upper, unit))
    under = np.minimum(1.0, 0.5 + safe_div(lower - close, unit))
    out = np.where(diff(close, upper) > 0, over, np.where(diff(close, lower) < 0, -under, 0.0))
    return nan_if(out, upper, lower, unit)


@sensor("bb_touch", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0},
        warmup=lambda p: p["period"] - 1, indicators=("BBANDS",))
def bb_touch(b: Bars, period: int, stdevs: float) -> np.ndarray:
    """Close outside a Bollinger band, faded (mean reversion)."""
    upper, middle, lower = talib.BBANDS(b.close, period, stdevs, stdevs, 0)
    return -_beyond(b.close, upper, lower, (upper - middle) / stdevs)


@sensor("bb_squeeze", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0, "keltner": 1.5},
        warmup=lambda p: p["period"] + 1, settle=lambda p: max(ema_settle(p["period"]), wilder_settle(p["period"])),
        indicators=("BBANDS", "EMA", "ATR"))
def bb_squeeze(b: Bars, period: int, stdevs: float, keltner: float) -> np.ndarray:
    """Squeeze release: Bollinger bands leave the Keltner channel; vote the breakout side."""
    upper, middle, lower = talib.BBANDS(b.close, period, stdevs, stdevs, 0)
    atr = talib.ATR(b.high, b.low, b.close, period)
    squeezed = (upper - lower) < 2.0 * keltner * atr
    released = prev(squeezed.astype(np.float64)) > 0.5
    out = np.where(released & ~squeezed, np.sign(b.close - talib.EMA(b.close, period)), 0.0)
    return nan_if(out, upper, atr, prev(atr))


@sensor("bb_rejection", Family.VOLATILITY, params={"period": 20, "stdevs": 2.0},
        warmup=lambda p: p["period"], indicators=("BBANDS",))
def bb_rejection(b: Bars, period: int, stdevs: float) -> np.ndarray:
    """Previous close outside a band, this close back inside it: vote the way back in."""
    upper, _, lower = talib.BBANDS(b.close, period, stdevs, stdevs, 0)
    pc, pu, pl = prev(b.close), prev(upper), prev(lower)
    up = (pc < pl) & (b.close > lower)
    down = (pc > pu) & (b.close < upper)
    return nan_if(up.astype(np.float64) - down, pu, pl, upper)


@sensor("keltner_breakout", Family.VOLATILITY, params={"period": 20, "atr": 10, "mult": 2.0},
        warmup=lambda p: max(p["period"] - 1, p["atr"]),
        settle=lambda p: max(ema_settle(p["period"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR"))
def keltner_breakout(b: Bars, period: int, atr: int, mult: float) -> np.ndarray:
    """Close outside the Keltner channel, followed (breakout)."""
    mid = talib.EMA(b.close, period)
    a = talib.ATR(b.high, b.low, b.close, atr)
    return _beyond(b.close, mid + mult * a, mid - mult * a, a)


@sensor("donchian_breakout", Family.VOLATILITY, params={"period": 20}, warmup=lambda p: p["period"],
        indicators=("MAX", "MIN"))
def donchian_breakout(b: Bars, period: int) -> np.ndarray:
    """Close beyond the previous ``period`` bars' highest high / lowest low."""
    upper, lower = prev(talib.MAX(b.high, period)), prev(talib.MIN(b.low, period))
    out = (b.close > upper).astype(np.float64) - (b.close < lower)
    return nan_if(out, upper, lower)


@sensor("atr_expansion", Family.VOLATILITY, params={"atr": 14, "baseline": 50, "threshold": 1.5},
        warmup=lambda p: p["atr"] + p["baseline"] - 1, settle=lambda p: wilder_settle(p["atr"]),
        indicators=("ATR", "SMA"))
def atr_expansion(b: Bars, atr: int, baseline: int, threshold: float) -> np.ndarray:
    """ATR well above its own average: follow the direction of the expanding bar."""
    a = talib.ATR(b.high, b.low, b.close, atr)
    ratio = safe_div(a, talib.SMA(a, baseline))
    strength = np.minimum(1.0, (ratio - 1.0) / threshold)
    out = np.where(ratio > threshold, np.sign(b.close - b.open) * strength, 0.0)
    return nan_if(out, ratio)


@sensor("zscore", Family.VOLATILITY, params={"period": 20}, warmup=lambda p: p["period"] - 1,
        indicators=("SMA", "STDDEV"))
def zscore(b: Bars, period: int) -> np.ndarray:
    """Distance of close from its mean in standard deviations, faded (3 σ = full vote)."""
    z = safe_div(b.close - talib.SMA(b.close, period), talib.STDDEV(b.close, period, 1.0))
    return -z / 3.0


@sensor("tr_spike", Family.VOLATILITY, params={"period": 20, "threshold": 2.5},
        warmup=lambda p: p["period"], indicators=("TRANGE", "SMA"))
def tr_spike(b: Bars, period: int, threshold: float) -> np.ndarray:
    """A true range several times its average: follow the bar's direction."""
    tr = talib.TRANGE(b.high, b.low, b.close)
    ratio = safe_div(tr, talib.SMA(tr, period))
    out = np.where(ratio > threshold, np.sign(b.close - b.open), 0.0)
    return nan_if(out, ratio)
