"""Trend sensors: vote with the direction the market is moving in."""

from __future__ import annotations

import numpy as np
import talib

from sensors.base import Bars, Family, ema_settle, sensor, wilder_settle
from sensors.shape import cross, nan_if, prev, sign_of, squash

# SAR has no smoothing constant: its start-dependence ends at a reversal that both runs share
# (the SAR re-anchors on the prior extreme). 500 bars always contained enough reversals on
# the recorded data (parity test); the window keeps that margin.
SAR_SETTLE = 500


@sensor("ema_cross", Family.TREND, params={"fast": 9, "slow": 21},
        warmup=lambda p: p["slow"], settle=lambda p: ema_settle(p["slow"]), indicators=("EMA",))
def ema_cross(b: Bars, fast: int, slow: int) -> np.ndarray:
    """Fast EMA crossing the slow EMA: +1 up-cross, -1 down-cross."""
    return cross(talib.EMA(b.close, fast), talib.EMA(b.close, slow))


@sensor("ema_trend", Family.TREND, params={"fast": 12, "slow": 26, "atr": 14},
        warmup=lambda p: max(p["slow"] - 1, p["atr"]),
        settle=lambda p: max(ema_settle(p["slow"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR"))
def ema_trend(b: Bars, fast: int, slow: int, atr: int) -> np.ndarray:
    """Gap between a fast and a slow EMA, in ATRs."""
    gap = talib.EMA(b.close, fast) - talib.EMA(b.close, slow)
    return squash(gap / talib.ATR(b.high, b.low, b.close, atr))


@sensor("macd_cross", Family.TREND, params={"fast": 12, "slow": 26, "signal": 9},
        warmup=lambda p: p["slow"] + p["signal"] - 1,
        settle=lambda p: ema_settle(p["slow"]) + ema_settle(p["signal"]), indicators=("MACD",))
def macd_cross(b: Bars, fast: int, slow: int, signal: int) -> np.ndarray:
    """MACD line crossing its signal line."""
    macd, sig, _ = talib.MACD(b.close, fast, slow, signal)
    return cross(macd, sig)


@sensor("macd_hist", Family.TREND, params={"fast": 12, "slow": 26, "signal": 9, "atr": 14},
        warmup=lambda p: max(p["slow"] + p["signal"] - 2, p["atr"]),
        settle=lambda p: ema_settle(p["slow"]) + ema_settle(p["signal"]) + wilder_settle(p["atr"]),
        indicators=("MACD", "ATR"))
def macd_hist(b: Bars, fast: int, slow: int, signal: int, atr: int) -> np.ndarray:
    """MACD histogram in ATRs (momentum of the trend)."""
    _, _, hist = talib.MACD(b.close, fast, slow, signal)
    return squash(2.0 * hist / talib.ATR(b.high, b.low, b.close, atr))


@sensor("psar", Family.TREND, params={"acceleration": 0.02, "maximum": 0.2, "atr": 14},
        warmup=lambda p: p["atr"], settle=lambda p: SAR_SETTLE + wilder_settle(p["atr"]),
        indicators=("SAR", "ATR"))
def psar(b: Bars, acceleration: float, maximum: float, atr: int) -> np.ndarray:
    """Close above (long) or below (short) the parabolic SAR, strength by distance in ATRs."""
    sar = talib.SAR(b.high, b.low, acceleration, maximum)
    return squash((b.close - sar) / talib.ATR(b.high, b.low, b.close, atr))


@sensor("adx_di", Family.TREND, params={"period": 14, "threshold": 20.0},
        warmup=lambda p: 2 * p["period"] - 1, settle=lambda p: 2 * wilder_settle(p["period"]),
        indicators=("ADX", "PLUS_DI", "MINUS_DI"))
def adx_di(b: Bars, period: int, threshold: float) -> np.ndarray:
    """+DI vs -DI direction while ADX says a trend exists; strength ADX/50."""
    adx = talib.ADX(b.high, b.low, b.close, period)
    di = talib.PLUS_DI(b.high, b.low, b.close, period) - talib.MINUS_DI(b.high, b.low, b.close, period)
    out = np.where(adx > threshold, np.sign(di) * np.minimum(1.0, adx / 50.0), 0.0)
    return nan_if(out, adx, di)


@sensor("di_cross", Family.TREND, params={"period": 14},
        warmup=lambda p: p["period"] + 1, settle=lambda p: wilder_settle(p["period"]),
        indicators=("PLUS_DI", "MINUS_DI"))
def di_cross(b: Bars, period: int) -> np.ndarray:
    """+DI crossing -DI."""
    return cross(talib.PLUS_DI(b.high, b.low, b.close, period), talib.MINUS_DI(b.high, b.low, b.close, period))


@sensor("aroon", Family.TREND, params={"period": 25}, warmup=lambda p: p["period"], indicators=("AROONOSC",))
def aroon(b: Bars, period: int) -> np.ndarray:
    """Aroon oscillator / 100: recent highs (+) or recent lows (-)."""
    return talib.AROONOSC(b.high, b.low, period) / 100.0


@sensor("ichimoku", Family.TREND, params={"tenkan": 9, "kijun": 26, "senkou": 52},
        warmup=lambda p: max(p["senkou"], p["kijun"]) - 1 + p["kijun"], indicators=("MAX", "MIN"))
def ichimoku(b: Bars, tenkan: int, kijun: int, senkou: int) -> np.ndarray:
    """Close vs the cloud (spans displaced ``kijun`` bars) plus the tenkan/kijun cross state."""
    t = (talib.MAX(b.high, tenkan) + talib.MIN(b.low, tenkan)) / 2.0
    k = (talib.MAX(b.high, kijun) + talib.MIN(b.low, kijun)) / 2.0
    span_a = prev((t + k) / 2.0, kijun)
    span_b = prev((talib.MAX(b.high, senkou) + talib.MIN(b.low, senkou)) / 2.0, kijun)
    top, bottom = np.maximum(span_a, span_b), np.minimum(span_a, span_b)
    cloud = (b.close > top).astype(np.float64) - (b.close < bottom)
    return nan_if(0.5 * cloud + 0.5 * np.sign(t - k), span_a, span_b, t, k)


def regression_slope(x: np.ndarray, period: int) -> np.ndarray:
    """Least-squares slope of the last ``period`` values, equal to TA-Lib's LINEARREG_SLOPE.

    Computed as the equivalent weighted sum of first differences,
    slope = sum_j 6 j (n - j) / (n (n^2 - 1)) * (x_j - x_{j-1}), window by window. TA-Lib
    keeps running sums of x and j*x instead, whose rounding depends on where the series
    starts (~1e-10 relative after 20k bars), which would break live/batch parity.
    """
    n = period
    j = np.arange(1, n)
    weights = 6.0 * j * (n - j) / (n * (n * n - 1.0))
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
    return squash(slope * period / (3.0 * talib.ATR(b.high, b.low, b.close, atr)))


@sensor("sma_cross", Family.TREND, params={"fast": 20, "slow": 50}, warmup=lambda p: p["slow"],
        indicators=("SMA",))
def sma_cross(b: Bars, fast: int, slow: int) -> np.ndarray:
    """Fast SMA crossing the slow SMA."""
    return cross(talib.SMA(b.close, fast), talib.SMA(b.close, slow))


@sensor("ma_ribbon", Family.TREND, params={"short": 10, "mid": 20, "long": 50},
        warmup=lambda p: p["long"] - 1, indicators=("SMA",))
def ma_ribbon(b: Bars, short: int, mid: int, long: int) -> np.ndarray:
    """How well close > SMA short > SMA mid > SMA long (or the reverse) are stacked."""
    s, m, lg = talib.SMA(b.close, short), talib.SMA(b.close, mid), talib.SMA(b.close, long)
    return (sign_of(b.close, s) + sign_of(s, m) + sign_of(m, lg)) / 3.0
