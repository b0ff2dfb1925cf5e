"""Trend sensors: vote with the direction the market is moving in."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, ema_settle, live, sensor, wilder_settle
from sensors.shape import (
    cross, cross1, float1, max1, min1, missing1, nan1, price1, sign1, sign_of, sign_of1, squash_, tanh1, where1,
)

# SAR has no smoothing constant: its start-dependence ends at a reversal that both runs share
# (the SAR re-anchors on the prior extreme). 500 bars always contained enough reversals on
# the recorded data (parity test); the window keeps that margin.
SAR_SETTLE = 500


@sensor("ema_cross", Family.TREND, params={"fast": 9, "slow": 21},
        warmup=lambda p: p["slow"], settle=lambda p: ema_settle(p["slow"]), indicators=("EMA",))
def ema_cross(b: Bars, fast: int, slow: int) -> np.ndarray:
    """Fast EMA crossing the slow EMA: +1 up-cross, -1 down-cross."""
    return cross(ta.EMA(b.close, fast), ta.EMA(b.close, slow))


@sensor("ema_trend", Family.TREND, params={"fast": 12, "slow": 26, "atr": 14},
        warmup=lambda p: max(p["slow"] - 1, p["atr"]),
        settle=lambda p: max(ema_settle(p["slow"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR"))
def ema_trend(b: Bars, fast: int, slow: int, atr: int) -> np.ndarray:
    """Gap between a fast and a slow EMA, in ATRs."""
    gap = ta.EMA(b.close, fast) - ta.EMA(b.close, slow)
    gap /= ta.ATR(b.high, b.low, b.close, atr)
    return squash_(gap)


@sensor("macd_cross", Family.TREND, params={"fast": 12, "slow": 26, "signal": 9},
        warmup=lambda p: p["slow"] + p["signal"] - 1,
        settle=lambda p: ema_settle(p["slow"]) + ema_settle(p["signal"]), indicators=("MACD",))
def macd_cross(b: Bars, fast: int, slow: int, signal: int) -> np.ndarray:
    """MACD line crossing its signal line."""
    macd, sig, _ = ta.MACD(b.close, fast, slow, signal)
    return cross(macd, sig)


@sensor("macd_hist", Family.TREND, params={"fast": 12, "slow": 26, "signal": 9, "atr": 14},
        warmup=lambda p: max(p["slow"] + p["signal"] - 2, p["atr"]),
        settle=lambda p: ema_settle(p["slow"]) + ema_settle(p["signal"]) + wilder_settle(p["atr"]),
        indicators=("MACD", "ATR"))
def macd_hist(b: Bars, fast: int, slow: int, signal: int, atr: int) -> np.ndarray:
    """MACD histogram in ATRs (momentum of the trend)."""
    _, _, hist = ta.MACD(b.close, fast, slow, signal)
    x = 2.0 * hist
    x /= ta.ATR(b.high, b.low, b.close, atr)
    return squash_(x)


@sensor("psar", Family.TREND, params={"acceleration": 0.02, "maximum": 0.2, "atr": 14},
        warmup=lambda p: p["atr"], settle=lambda p: SAR_SETTLE + wilder_settle(p["atr"]),
        indicators=("SAR", "ATR"))
def psar(b: Bars, acceleration: float, maximum: float, atr: int) -> np.ndarray:
    """Close above (long) or below (short) the parabolic SAR, strength by distance in ATRs."""
    x = b.close - ta.SAR(b.high, b.low, acceleration, maximum)
    x /= ta.ATR(b.high, b.low, b.close, atr)
    return squash_(x)


@sensor("adx_di", Family.TREND, params={"period": 14, "threshold": 20.0},
        warmup=lambda p: 2 * p["period"] - 1, settle=lambda p: 2 * wilder_settle(p["period"]),
        indicators=("ADX", "PLUS_DI", "MINUS_DI"))
def adx_di(b: Bars, period: int, threshold: float) -> np.ndarray:
    """+DI vs -DI direction while ADX says a trend exists; strength ADX/50."""
    adx = ta.ADX(b.high, b.low, b.close, period)
    di = ta.PLUS_DI(b.high, b.low, b.close, period) - ta.MINUS_DI(b.high, b.low, b.close, period)
    out = adx / 50.0
    np.minimum(1.0, out, out=out)
    missing = np.isnan(di)
    out *= np.sign(di, out=di)  # NaN where adx or di is NaN
    np.copyto(out, 0.0, where=adx <= threshold)  # no trend (NaN compares false: stays NaN)
    np.copyto(out, np.nan, where=missing)
    return out


@sensor("di_cross", Family.TREND, params={"period": 14},
        warmup=lambda p: p["period"] + 1, settle=lambda p: wilder_settle(p["period"]),
        indicators=("PLUS_DI", "MINUS_DI"))
def di_cross(b: Bars, period: int) -> np.ndarray:
    """+DI crossing -DI."""
    return cross(ta.PLUS_DI(b.high, b.low, b.close, period), ta.MINUS_DI(b.high, b.low, b.close, period))


@sensor("aroon", Family.TREND, params={"period": 25}, warmup=lambda p: p["period"], indicators=("AROONOSC",))
def aroon(b: Bars, period: int) -> np.ndarray:
    """Aroon oscillator / 100: recent highs (+) or recent lows (-)."""
    return np.divide(ta.AROONOSC(b.high, b.low, period), 100.0)


@sensor("ichimoku", Family.TREND, params={"tenkan": 9, "kijun": 26, "senkou": 52},
        warmup=lambda p: max(p["senkou"], p["kijun"]) - 1 + p["kijun"], indicators=("MAX", "MIN"))
def ichimoku(b: Bars, tenkan: int, kijun: int, senkou: int) -> np.ndarray:
    """Close vs the cloud (spans displaced ``kijun`` bars) plus the tenkan/kijun cross state."""
    t = ta.MAX(b.high, tenkan) + ta.MIN(b.low, tenkan)
    t /= 2.0
    k = ta.MAX(b.high, kijun) + ta.MIN(b.low, kijun)
    k /= 2.0
    span_a = t + k  # the spans as computed at each bar; drawn ``kijun`` bars later
    span_a /= 2.0
    span_b = ta.MAX(b.high, senkou) + ta.MIN(b.low, senkou)
    span_b /= 2.0
    top, bottom = np.maximum(span_a, span_b), np.minimum(span_a, span_b, out=span_b)
    n = b.close.shape[0]
    lag = min(kijun, n)
    cloud = np.empty(n)
    cloud[:lag] = np.nan  # no cloud drawn yet
    close = b.close[lag:]
    np.subtract(close > top[: n - lag], close < bottom[: n - lag], out=cloud[lag:], dtype=np.float64)
    np.copyto(cloud[lag:], np.nan, where=np.isnan(top[: n - lag]))  # NaN where either span is
    cloud *= 0.5
    trend = np.subtract(t, k, out=t)
    np.sign(trend, out=trend)  # NaN where t or k is
    trend *= 0.5
    cloud += trend
    return cloud


@lru_cache(maxsize=32)
def _slope_weights(n: int) -> np.ndarray:
    """Weight of each first difference in the least-squares slope of ``n`` values (see below)."""
    j = np.arange(1, n)
    return 6.0 * j * (n - j) / (n * (n * n - 1.0))


def regression_slope(x: np.ndarray, period: int) -> np.ndarray:
    """Least-squares slope of the last ``period`` values, equal to TA-Lib's LINEARREG_SLOPE.

    Computed as the equivalent weighted sum of first differences,
    slope = sum_j 6 j (n - j) / (n (n^2 - 1)) * (x_j - x_{j-1}), window by window. TA-Lib
    keeps running sums of x and j*x instead, whose rounding depends on where the series
    starts (~1e-10 relative after 20k bars), which would break live/batch parity.
    """
    n = period
    weights = _slope_weights(n)
    d = np.diff(x, prepend=np.nan)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        # correlate: out[i] = sum_j weights[j-1] * d[i - n + 1 + j]
        out[n - 1:] = np.correlate(d[1:], weights, mode="valid")
    return out


@sensor("linreg_slope", Family.TREND, params={"period": 20, "atr": 14},
        warmup=lambda p: max(p["period"] - 1, p["atr"]), settle=lambda p: wilder_settle(p["atr"]),
        indicators=("LINEARREG_SLOPE", "ATR"))
def linreg_slope(b: Bars, period: int, atr: int) -> np.ndarray:
    """Least-squares slope over the period, as ATRs travelled across it."""
    slope = regression_slope(b.close, period)
    slope *= period
    slope /= 3.0 * ta.ATR(b.high, b.low, b.close, atr)
    return squash_(slope)


@sensor("sma_cross", Family.TREND, params={"fast": 20, "slow": 50}, warmup=lambda p: p["slow"],
        indicators=("SMA",))
def sma_cross(b: Bars, fast: int, slow: int) -> np.ndarray:
    """Fast SMA crossing the slow SMA."""
    return cross(ta.SMA(b.close, fast), ta.SMA(b.close, slow))


@sensor("ma_ribbon", Family.TREND, params={"short": 10, "mid": 20, "long": 50},
        warmup=lambda p: p["long"] - 1, indicators=("SMA",))
def ma_ribbon(b: Bars, short: int, mid: int, long: int) -> np.ndarray:
    """How well close > SMA short > SMA mid > SMA long (or the reverse) are stacked."""
    s, m, lg = ta.SMA(b.close, short), ta.SMA(b.close, mid), ta.SMA(b.close, long)
    out = sign_of(b.close, s)
    out += sign_of(s, m)
    out += sign_of(m, lg)
    out /= 3.0
    return out


# ------------------------------------------------------------------ live twins (last bar only)
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``):
# the shape helpers (``*1``) work on one value or one per symbol alike. Price-unit values pass
# through ``price1`` before a tie is judged (see there).


@live("ema_cross", stacked=True)
def _ema_cross(b: Bars, fast: int, slow: int) -> float:
    f, s = ta.EMA(b.close, fast), ta.EMA(b.close, slow)
    return cross1(*price1(f[-1], s[-1], f[-2], s[-2]))  # ties are judged in price units


@live("ema_trend", stacked=True)
def _ema_trend(b: Bars, fast: int, slow: int, atr: int) -> float:
    gap = ta.EMA(b.close, fast)[-1] - ta.EMA(b.close, slow)[-1]
    return tanh1(gap / ta.ATR(b.high, b.low, b.close, atr)[-1])


@live("macd_cross", stacked=True)
def _macd_cross(b: Bars, fast: int, slow: int, signal: int) -> float:
    macd, sig, _ = ta.MACD(b.close, fast, slow, signal)
    # MACD and its signal are price differences near 0, where the tie rule's absolute floor
    # (TIE_ABS, in price units) decides ties: judged in the symbol's own units
    return cross1(*price1(macd[-1], sig[-1], macd[-2], sig[-2]))


@live("macd_hist", stacked=True)
def _macd_hist(b: Bars, fast: int, slow: int, signal: int, atr: int) -> float:
    hist = ta.MACD(b.close, fast, slow, signal)[2][-1]
    return tanh1(2.0 * hist / ta.ATR(b.high, b.low, b.close, atr)[-1])


@live("psar", stacked=True)
def _psar(b: Bars, acceleration: float, maximum: float, atr: int) -> float:
    sar = ta.SAR(b.high, b.low, acceleration, maximum)[-1]
    return tanh1((b.close[-1] - sar) / ta.ATR(b.high, b.low, b.close, atr)[-1])


@live("adx_di", stacked=True)
def _adx_di(b: Bars, period: int, threshold: float) -> float:
    adx = ta.ADX(b.high, b.low, b.close, period)[-1]
    di = ta.PLUS_DI(b.high, b.low, b.close, period)[-1] - ta.MINUS_DI(b.high, b.low, b.close, period)[-1]
    return missing1(nan1(adx, di), where1(adx > threshold, sign1(di) * min1(1.0, adx / 50.0), 0.0))


@live("di_cross", stacked=True)
def _di_cross(b: Bars, period: int) -> float:
    plus, minus = ta.PLUS_DI(b.high, b.low, b.close, period), ta.MINUS_DI(b.high, b.low, b.close, period)
    return cross1(plus[-1], minus[-1], plus[-2], minus[-2])


@live("aroon", stacked=True)
def _aroon(b: Bars, period: int) -> float:
    return ta.AROONOSC(b.high, b.low, period)[-1] / 100.0


@live("ichimoku", stacked=True)
def _ichimoku(b: Bars, tenkan: int, kijun: int, senkou: int) -> float:
    hi_t, lo_t = ta.MAX(b.high, tenkan), ta.MIN(b.low, tenkan)
    hi_k, lo_k = ta.MAX(b.high, kijun), ta.MIN(b.low, kijun)
    j = -1 - kijun  # the cloud drawn at this bar was computed ``kijun`` bars ago
    t, k = (hi_t[-1] + lo_t[-1]) / 2.0, (hi_k[-1] + lo_k[-1]) / 2.0
    span_a = ((hi_t[j] + lo_t[j]) / 2.0 + (hi_k[j] + lo_k[j]) / 2.0) / 2.0
    span_b = (ta.MAX(b.high, senkou)[j] + ta.MIN(b.low, senkou)[j]) / 2.0
    close = b.close[-1]
    cloud = float1(close > max1(span_a, span_b)) - float1(close < min1(span_a, span_b))
    return missing1(nan1(span_a, span_b, t, k), 0.5 * cloud + 0.5 * sign1(t - k))


@live("linreg_slope", stacked=True)
def _linreg_slope(b: Bars, period: int, atr: int) -> float:
    slope = _slope_weights(period) @ np.diff(b.close[-period:], axis=0)
    return tanh1(slope * period / (3.0 * ta.ATR(b.high, b.low, b.close, atr)[-1]))


@live("sma_cross", stacked=True)
def _sma_cross(b: Bars, fast: int, slow: int) -> float:
    f, s = ta.SMA(b.close, fast), ta.SMA(b.close, slow)
    return cross1(*price1(f[-1], s[-1], f[-2], s[-2]))


@live("ma_ribbon", stacked=True)
def _ma_ribbon(b: Bars, short: int, mid: int, long: int) -> float:
    close, s, m, lg = price1(b.close[-1], ta.SMA(b.close, short)[-1], ta.SMA(b.close, mid)[-1],
                             ta.SMA(b.close, long)[-1])
    return (sign_of1(close, s) + sign_of1(s, m) + sign_of1(m, lg)) / 3.0
