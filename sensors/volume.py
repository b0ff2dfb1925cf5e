"""Volume sensors: OBV, VWAP, climaxes, money flow, accumulation/distribution.

OBV and A/D are running totals whose level depends on where the history starts; every
sensor here uses only their *changes* (differences, or distance from their own EMA), which
do not, so a live window equals batch mode.

Volume totals and averages from TA-Lib (SUM, SMA) are running totals too: each bar adds the
new volume and subtracts the one leaving the window. After a stretch of zero-volume bars
(exchange outages, a dead market) the total should be exactly 0 but holds the rounding residue
of the volumes that left, a residue that differs between a live window and a whole history
and can be negative. Every ratio to such a total goes through ``traded``/``traded1``, which
make it exactly 0 where the window's volumes are all 0 and never negative; the ratio is then 0
("no volume, no vote") in both modes.
"""

from __future__ import annotations

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, ema_settle, live, sensor, wilder_settle
from sensors.shape import (
    above, delta1, diff1, float1, max1, missing1, nan1, nan_if, ratio, safe_div, safe_div1, sign1, squash_, tanh1,
    where1,
)


def traded(total: np.ndarray, volume: np.ndarray, period: int) -> np.ndarray:
    """A TA-Lib running volume ``total`` (SUM or SMA over ``period``) without its rounding
    residue: exactly 0 where the window's volumes are all 0, never below 0 (module docstring).
    A new array: ``total`` may be a shared, read-only indicator."""
    out = np.maximum(total, 0.0)  # NaN stays NaN
    out[ta.MAX(volume, period) <= 0.0] = 0.0
    return out


def traded1(total: float | np.ndarray, volume: np.ndarray, period: int) -> float | np.ndarray:
    """``traded`` at the window's last bar: ``volume`` ends at that bar (one symbol (W,) or a
    burst (W, S))."""
    silent = np.max(volume[-period:], axis=0) <= 0.0
    return where1(silent, 0.0, max1(total, 0.0))


@sensor("obv_divergence", Family.VOLUME, params={"period": 20}, warmup=lambda p: p["period"],
        indicators=("OBV", "SUM"))
def obv_divergence(b: Bars, period: int) -> np.ndarray:
    """Price and OBV moving apart over the period: vote with volume (OBV up, price down → buy)."""
    obv = ta.OBV(b.close, b.volume)
    n = obv.shape[0]
    lag = min(period, n)
    flow = np.empty(n)  # OBV's change over the period, per unit of the period's volume
    flow[:lag] = np.nan
    np.subtract(obv[lag:], obv[: n - lag], out=flow[lag:])
    ratio(flow, traded(ta.SUM(b.volume, period), b.volume, period), out=flow)
    move = np.empty(n)
    move[:lag] = np.nan
    np.subtract(b.close[lag:], b.close[: n - lag], out=move[lag:])
    missing = np.isnan(flow)
    missing |= np.isnan(move)
    # a divergence: price and OBV moved opposite ways (NaN compares false)
    agree = ((move < 0) & (flow > 0)) | ((move > 0) & (flow < 0))
    np.logical_not(agree, out=agree)
    np.copyto(flow, 0.0, where=agree)
    np.copyto(flow, np.nan, where=missing)
    return flow


@sensor("obv_trend", Family.VOLUME, params={"period": 20}, warmup=lambda p: p["period"] - 1,
        settle=lambda p: ema_settle(p["period"]), indicators=("OBV", "EMA", "SUM"))
def obv_trend(b: Bars, period: int) -> np.ndarray:
    """OBV above (buy) or below (sell) its EMA, relative to the period's volume."""
    obv = ta.OBV(b.close, b.volume)
    x = obv - ta.EMA(obv, period)
    ratio(x, traded(ta.SUM(b.volume, period), b.volume, period), out=x)
    x *= 4.0
    return squash_(x)


def window_sum(x: np.ndarray, period: int) -> np.ndarray:
    """Sum of the last ``period`` values, window by window (same result as ta.SUM).

    TA-Lib's SUM keeps a running total; on price × volume (≈1e8 per bar) its rounding
    depends on where the series starts enough to break live/batch parity at 1e-9.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n < period:
        return out
    # Each window summed on its own, by a fixed tree independent of where the window sits:
    # ``block`` holds sums of ``size`` consecutive values (size doubling each round) and each set
    # bit of ``period`` adds one such block. log2(period) passes instead of a per-window dot
    # product (np.convolve), and no running total.
    windows = n - period + 1
    total = out[period - 1:]
    offset, size, block, remaining, first = 0, 1, x, period, True
    while True:
        if remaining & 1:
            part = block[offset: offset + windows]
            if first:
                np.copyto(total, part)
                first = False
            else:
                total += part
            offset += size
        remaining >>= 1
        if not remaining:
            return out
        block = block[:-size] + block[size:]
        size *= 2


@sensor("vwap_deviation", Family.VOLUME, params={"period": 20, "atr": 14},
        warmup=lambda p: max(p["period"] - 1, p["atr"]), settle=lambda p: wilder_settle(p["atr"]),
        indicators=("TYPPRICE", "SUM", "ATR"))
def vwap_deviation(b: Bars, period: int, atr: int) -> np.ndarray:
    """Close stretched away from the rolling VWAP, in ATRs, faded."""
    volume = window_sum(b.volume, period)
    weighted = ta.TYPPRICE(b.high, b.low, b.close) * b.volume
    weighted = window_sum(weighted, period)
    vwap = b.close.copy()  # no trades: no deviation
    np.divide(weighted, volume, out=vwap, where=volume > 0)
    x = np.subtract(b.close, vwap, out=vwap)
    x /= 2.0 * ta.ATR(b.high, b.low, b.close, atr)
    squash_(x)
    np.negative(x, out=x)
    return nan_if(x, volume)


@sensor("volume_climax", Family.VOLUME, params={"period": 20, "threshold": 3.0},
        warmup=lambda p: p["period"] - 1, indicators=("SMA",))
def volume_climax(b: Bars, period: int, threshold: float) -> np.ndarray:
    """Volume several times its average: exhaustion, vote against the bar's direction."""
    avg = traded(ta.SMA(b.volume, period), b.volume, period)
    out = avg * 0.0  # 0, NaN before the average exists (volume ≥ 0: never -0)
    loud = np.flatnonzero(above(b.volume, threshold * avg))  # a few bars: their side only
    out[loud] = -np.sign(b.close[loud] - b.open[loud])
    return out


@sensor("cmf", Family.VOLUME, params={"period": 20}, warmup=lambda p: p["period"] - 1, indicators=("SUM",))
def cmf(b: Bars, period: int) -> np.ndarray:
    """Chaikin money flow: volume-weighted close location over the period."""
    multiplier = b.close - b.low
    multiplier -= b.high - b.close
    ratio(multiplier, b.high - b.low, out=multiplier)
    multiplier *= b.volume
    return ratio(ta.SUM(multiplier, period), traded(ta.SUM(b.volume, period), b.volume, period))


@sensor("adosc", Family.VOLUME, params={"fast": 3, "slow": 10}, warmup=lambda p: p["slow"] - 1,
        settle=lambda p: ema_settle(p["slow"]), indicators=("ADOSC", "SMA"))
def adosc(b: Bars, fast: int, slow: int) -> np.ndarray:
    """Chaikin A/D oscillator in average bar volumes: accumulation (+) or distribution (-)."""
    osc = ta.ADOSC(b.high, b.low, b.close, b.volume, fast, slow)
    x = ratio(osc, traded(ta.SMA(b.volume, slow), b.volume, slow))
    x *= 0.5
    return squash_(x)


@sensor("volume_breakout", Family.VOLUME, params={"period": 20, "mult": 1.5}, warmup=lambda p: p["period"],
        indicators=("MAX", "MIN", "SMA"))
def volume_breakout(b: Bars, period: int, mult: float) -> np.ndarray:
    """Donchian breakout confirmed by volume above ``mult`` × its previous average."""
    upper, lower = ta.MAX(b.high, period)[:-1], ta.MIN(b.low, period)[:-1]  # up to the previous bar
    close, volume = b.close[1:], b.volume[1:]
    out = np.empty(b.close.shape[0])
    out[:1] = np.nan  # no previous bar
    loud = above(volume, mult * traded(ta.SMA(b.volume, period), b.volume, period)[:-1])
    up = (close > upper) & loud
    loud &= close < lower
    np.subtract(up, loud, out=out[1:], dtype=np.float64)
    nan_if(out[1:], upper, lower)
    return out


@sensor("force_index", Family.VOLUME, params={"period": 13, "atr": 14},
        warmup=lambda p: max(p["period"], p["atr"]),
        settle=lambda p: max(ema_settle(p["period"]), wilder_settle(p["atr"])), indicators=("EMA", "ATR", "SMA"))
def force_index(b: Bars, period: int, atr: int) -> np.ndarray:
    """Elder's force index (EMA of price change × volume) in ATR × average volume."""
    change = np.empty(b.close.shape[0])
    change[:1] = np.nan  # no previous close (TA-Lib skips the leading NaN)
    np.subtract(b.close[1:], b.close[:-1], out=change[1:])
    change *= b.volume
    force = ta.EMA(change, period)
    unit = ta.ATR(b.high, b.low, b.close, atr) * traded(ta.SMA(b.volume, period), b.volume, period)
    return squash_(ratio(force, unit, out=unit))


# ------------------------------------------------------------------ live twins (last bar only)
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``).
# OBV and A/D run through a burst's symbols one after the other (``sensors.ta``): a symbol's
# totals carry the previous symbols' as a constant offset, which the differences used here cancel.


@live("obv_divergence", stacked=True)
def _obv_divergence(b: Bars, period: int) -> float:
    obv = ta.OBV(b.close, b.volume)
    j = -1 - period
    flow = safe_div1(obv[-1] - obv[j], traded1(ta.SUM(b.volume, period)[-1], b.volume, period))
    move = b.close[-1] - b.close[j]
    out = where1(((move < 0) & (flow > 0)) | ((move > 0) & (flow < 0)), flow, 0.0)
    return missing1(nan1(flow, move), out)


@live("obv_trend", stacked=True)
def _obv_trend(b: Bars, period: int) -> float:
    obv = ta.OBV(b.close, b.volume)
    volume = traded1(ta.SUM(b.volume, period)[-1], b.volume, period)
    return tanh1(4.0 * safe_div1(obv[-1] - ta.EMA(obv, period)[-1], volume))


@live("vwap_deviation", stacked=True)
def _vwap_deviation(b: Bars, period: int, atr: int) -> float:
    # the last window's sums in one pass (batch mode's ``window_sum`` adds the same values in
    # another order: equal to rounding, far inside the 1e-9 parity)
    v = b.volume[-period:]
    volume = np.sum(v, axis=0)
    weighted = np.sum(ta.TYPPRICE(b.high, b.low, b.close)[-period:] * v, axis=0)
    close = b.close[-1]
    vwap = where1(volume > 0, safe_div1(weighted, volume), close)  # no trades: no deviation
    return -tanh1((close - vwap) / (2.0 * ta.ATR(b.high, b.low, b.close, atr)[-1]))


@live("volume_climax", stacked=True)
def _volume_climax(b: Bars, period: int, threshold: float) -> float:
    avg = traded1(ta.SMA(b.volume, period)[-1], b.volume, period)
    loud = diff1(b.volume[-1], threshold * avg) > 0
    return missing1(nan1(avg), where1(loud, -sign1(b.close[-1] - b.open[-1]), 0.0))


@live("cmf", stacked=True)
def _cmf(b: Bars, period: int) -> float:
    t = b.tail(period)
    flow = safe_div((t.close - t.low) - (t.high - t.close), t.high - t.low) * t.volume
    return safe_div1(np.sum(flow, axis=0), np.sum(t.volume, axis=0))


@live("adosc", stacked=True)
def _adosc(b: Bars, fast: int, slow: int) -> float:
    osc = ta.ADOSC(b.high, b.low, b.close, b.volume, fast, slow)[-1]
    return tanh1(0.5 * safe_div1(osc, traded1(ta.SMA(b.volume, slow)[-1], b.volume, slow)))


@live("volume_breakout", stacked=True)
def _volume_breakout(b: Bars, period: int, mult: float) -> float:
    upper, lower = ta.MAX(b.high, period)[-2], ta.MIN(b.low, period)[-2]
    average = traded1(ta.SMA(b.volume, period)[-2], b.volume[:-1], period)
    loud = diff1(b.volume[-1], mult * average) > 0
    close = b.close[-1]
    return missing1(nan1(upper, lower), float1((close > upper) & loud) - float1((close < lower) & loud))


@live("force_index", stacked=True)
def _force_index(b: Bars, period: int, atr: int) -> float:
    force = ta.EMA(delta1(b.close) * b.volume, period)[-1]
    unit = ta.ATR(b.high, b.low, b.close, atr)[-1] * traded1(ta.SMA(b.volume, period)[-1], b.volume, period)
    return tanh1(safe_div1(force, unit))
