"""Context (regime) sensors: they describe the market the voters work in and feed the
player's filter instead of voting. Signs: ``htf_trend`` + = up-trend; ``hurst`` and
``efficiency_ratio`` + = trending, - = mean-reverting / choppy (efficiency_ratio signed by
direction); ``vol_regime`` + = volatility high for this market; ``adx_regime`` + = trending.
"""

from __future__ import annotations

import math

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, ema_settle, live, sensor, wilder_settle
from sensors.shape import (
    log1, missing1, nan1, nan_if, ratio, safe_div1, squash_, tanh1, where1,
)


@sensor("htf_trend", Family.REGIME, params={"fast": 20, "slow": 50, "atr": 14}, context=True,
        warmup=lambda p: max(p["slow"] - 1, p["atr"]),
        settle=lambda p: max(ema_settle(p["slow"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR"))
def htf_trend(b: Bars, fast: int, slow: int, atr: int) -> np.ndarray:
    """Higher-timeframe trend: fast vs slow EMA in ATRs."""
    gap = ta.EMA(b.close, fast) - ta.EMA(b.close, slow)
    gap /= ta.ATR(b.high, b.low, b.close, atr)
    return squash_(gap)


def _returns(log_close: np.ndarray, lag: int) -> np.ndarray:
    """Log returns over ``lag`` bars, NaN for the first ``lag`` (TA-Lib skips leading NaNs)."""
    n = log_close.shape[0]
    lag = min(lag, n)
    out = np.empty(n)
    out[:lag] = np.nan
    np.subtract(log_close[lag:], log_close[: n - lag], out=out[lag:])
    return out


@sensor("hurst", Family.REGIME, params={"period": 100, "lag": 4}, context=True,
        warmup=lambda p: p["lag"] + p["period"] - 1, indicators=("VAR",))
def hurst(b: Bars, period: int, lag: int) -> np.ndarray:
    """Hurst exponent from the variance ratio of lag-k and 1-bar log returns; (H - 0.5) × 4."""
    log_close = np.log(b.close)
    var1 = ta.VAR(_returns(log_close, 1), period)
    var_k = ta.VAR(_returns(log_close, lag), period)
    x = ratio(var_k, lag * var1)
    flat = x <= 0  # no defined exponent: vote 0 (NaN compares false either way)
    flat |= np.isnan(x)
    np.copyto(x, 1.0, where=flat)
    h = np.log(x, out=x)  # h = 0.5 + 0.5 * log(ratio) / log(lag), in the same steps
    h *= 0.5
    h /= math.log(lag)
    h += 0.5
    h -= 0.5
    h *= 4.0
    np.copyto(h, 0.0, where=flat)
    return nan_if(h, var_k, var1)


@sensor("vol_regime", Family.REGIME, params={"atr": 14, "period": 100}, context=True,
        warmup=lambda p: p["atr"] + p["period"] - 1, settle=lambda p: wilder_settle(p["atr"]),
        indicators=("NATR", "SMA", "STDDEV"))
def vol_regime(b: Bars, atr: int, period: int) -> np.ndarray:
    """Log NATR's z-score against its own recent history (+ = unusually volatile)."""
    natr = ta.NATR(b.high, b.low, b.close, atr)
    level = np.maximum(natr, 1e-6)  # a flat market (ATR 0) is simply very quiet; NaN stays NaN
    np.log(level, out=level)
    z = level - ta.SMA(level, period)
    ratio(z, ta.STDDEV(level, period, 1.0), out=z)
    z /= 2.0
    return squash_(z)


@sensor("adx_regime", Family.REGIME, params={"period": 14}, context=True,
        warmup=lambda p: 2 * p["period"] - 1, settle=lambda p: 2 * wilder_settle(p["period"]),
        indicators=("ADX",))
def adx_regime(b: Bars, period: int) -> np.ndarray:
    """ADX above ~25 trending (+), below ~20 ranging (-)."""
    x = ta.ADX(b.high, b.low, b.close, period) - 22.5
    x /= 7.5
    return squash_(x)


@sensor("efficiency_ratio", Family.REGIME, params={"period": 20}, context=True,
        warmup=lambda p: p["period"], indicators=("SUM",))
def efficiency_ratio(b: Bars, period: int) -> np.ndarray:
    """Kaufman efficiency ratio, signed: net move / path length over the period."""
    steps = _returns(b.close, 1)  # price changes (not logs): the path the close travelled
    np.abs(steps, out=steps)
    path = ta.SUM(steps, period)
    move = _returns(b.close, period)
    return ratio(move, path, out=move)


# ------------------------------------------------------------------ live twins (last bar only)
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``).


@live("htf_trend", stacked=True)
def _htf_trend(b: Bars, fast: int, slow: int, atr: int) -> float:
    gap = ta.EMA(b.close, fast)[-1] - ta.EMA(b.close, slow)[-1]
    return tanh1(gap / ta.ATR(b.high, b.low, b.close, atr)[-1])


@live("vol_regime", stacked=True)
def _vol_regime(b: Bars, atr: int, period: int) -> float:
    # the z-score reads only the last ``period`` levels: TA-Lib's SMA/STDDEV over exactly those
    level = np.log(np.maximum(ta.NATR(b.high, b.low, b.close, atr)[-period:], 1e-6))  # NATR is scale-free
    z = safe_div1(level[-1] - ta.SMA(level, period)[-1], ta.STDDEV(level, period, 1.0)[-1])
    return tanh1(z / 2.0)


@live("adx_regime", stacked=True)
def _adx_regime(b: Bars, period: int) -> float:
    return tanh1((ta.ADX(b.high, b.low, b.close, period)[-1] - 22.5) / 7.5)


@live("efficiency_ratio", stacked=True)
def _efficiency_ratio(b: Bars, period: int) -> float:
    c = b.close[-period - 1:]
    return safe_div1(c[-1] - c[0], np.sum(np.abs(np.diff(c, axis=0)), axis=0))


# Stacked: a burst scales a symbol's prices by a power of two, which shifts every log close by
# the same constant; the log returns (differences) read here equal batch mode's to rounding.
@live("hurst", stacked=True)
def _hurst(b: Bars, period: int, lag: int) -> float:
    log_close = np.log(b.close[-(period + lag):])  # the last ``period`` returns of each kind
    var1 = ta.VAR(log_close[lag:] - log_close[lag - 1:-1], period)[-1]
    var_k = ta.VAR(log_close[lag:] - log_close[:-lag], period)[-1]
    ratio = safe_div1(var_k, lag * var1)
    positive = ratio > 0
    h = 0.5 + 0.5 * log1(where1(positive, ratio, 1.0)) / math.log(lag)
    return missing1(nan1(var1, var_k), where1(positive, (h - 0.5) * 4.0, 0.0))
