"""Market-structure sensors: narrow ranges, inside bars, swing highs/lows and their breaks.

Swing pivots are confirmed ``k`` bars after they form (the bar must be the extreme of the
``2k + 1`` bars around it), so nothing here looks ahead. Levels older than ``lookback`` bars
are forgotten: that bounds how far back a live window must reach (the window rule).
"""

from __future__ import annotations

import math

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, live, sensor
from sensors.shape import nan_if, prev, safe_div


@sensor("nr7", Family.STRUCTURE, params={"period": 7}, warmup=lambda p: p["period"], indicators=("MIN",))
def nr7(b: Bars, period: int) -> np.ndarray:
    """Breakout of a bar that had the narrowest range of the last ``period`` bars."""
    rng = b.high - b.low
    narrow = prev((rng == ta.MIN(rng, period)).astype(np.float64)) > 0.5
    out = np.where(narrow & (b.close > prev(b.high)), 1.0, np.where(narrow & (b.close < prev(b.low)), -1.0, 0.0))
    return nan_if(out, prev(ta.MIN(rng, period)))


@sensor("inside_bar", Family.STRUCTURE, warmup=lambda p: 2)
def inside_bar(b: Bars) -> np.ndarray:
    """Close beyond the mother bar after an inside bar."""
    mother_high, mother_low = prev(b.high, 2), prev(b.low, 2)
    inside = (prev(b.high) < mother_high) & (prev(b.low) > mother_low)
    out = np.where(inside & (b.close > mother_high), 1.0, np.where(inside & (b.close < mother_low), -1.0, 0.0))
    return nan_if(out, mother_high)


@sensor("higher_highs", Family.STRUCTURE, params={"period": 3}, warmup=lambda p: p["period"], indicators=("SUM",))
def higher_highs(b: Bars, period: int) -> np.ndarray:
    """Share of the last bars making higher highs and higher lows (+) or lower ones (-)."""
    ph, pl = prev(b.high), prev(b.low)
    up = np.where(np.isnan(ph), np.nan, ((b.high > ph) & (b.low > pl)).astype(np.float64))
    down = np.where(np.isnan(ph), np.nan, ((b.high < ph) & (b.low < pl)).astype(np.float64))
    return (ta.SUM(up, period) - ta.SUM(down, period)) / period


def _pivots(values: np.ndarray, k: int, highs: bool) -> np.ndarray:
    """Per bar j: True where the bar k bars earlier is confirmed as a pivot — the extreme of the
    2k + 1 bars centred on it (``extreme[j]`` covers bars j - 2k … j)."""
    extreme = ta.MAX(values, 2 * k + 1) if highs else ta.MIN(values, 2 * k + 1)
    confirmed = np.zeros(values.shape[0], dtype=bool)
    confirmed[2 * k:] = values[k: values.shape[0] - k] == extreme[2 * k:]
    return confirmed


def _latest(confirmed: np.ndarray) -> np.ndarray:
    """Per bar i: how many pivots were confirmed at bars ≤ i - 1, minus one (an index into them)."""
    before = np.zeros(confirmed.shape[0], dtype=np.int64)
    np.cumsum(confirmed[:-1], out=before[1:])
    return before - 1


def _last_level(values: np.ndarray, k: int, lookback: int, highs: bool) -> np.ndarray:
    """Per bar: the most recent pivot confirmed before it and at most ``lookback`` bars old, else NaN."""
    confirmed = _pivots(values, k, highs)
    pos = np.flatnonzero(confirmed) - k
    if pos.size == 0:
        return np.full(values.shape[0], np.nan)
    m = _latest(confirmed)
    p = pos[np.maximum(m, 0)]
    ok = (m >= 0) & (np.arange(values.shape[0]) - p <= lookback)
    return np.where(ok, values[p], np.nan)


@sensor("sr_break", Family.STRUCTURE, params={"pivot": 3, "lookback": 100},
        warmup=lambda p: 2 * p["pivot"] + 1, settle=lambda p: p["lookback"] + p["pivot"], indicators=("MAX", "MIN"))
def sr_break(b: Bars, pivot: int, lookback: int) -> np.ndarray:
    """Close breaking above the last swing high (resistance) or below the last swing low (support)."""
    res = _last_level(b.high, pivot, lookback, True)
    sup = _last_level(b.low, pivot, lookback, False)
    pc = prev(b.close)
    up = (b.close > res) & (pc <= res)
    down = (b.close < sup) & (pc >= sup)
    out = up.astype(np.float64) - down
    out[: 2 * pivot + 1] = np.nan
    return out


def _double(b: Bars, k: int, lookback: int, tolerance: float, highs: bool) -> np.ndarray:
    """+1/-1 on the bar whose close breaks the neckline of a double bottom/top, else 0."""
    values, opposite = (b.high, b.low) if highs else (b.low, b.high)
    n = values.shape[0]
    out = np.zeros(n)
    confirmed = _pivots(values, k, highs)
    pos = np.flatnonzero(confirmed) - k
    if pos.size < 2:
        return out
    # extreme of the other side between consecutive pivots: the neckline of each pair
    neck = (np.minimum if highs else np.maximum).reduceat(opposite, pos)[:-1]
    m = _latest(confirmed)
    have = m >= 1
    m = np.maximum(m, 1)
    p1, p2 = pos[m - 1], pos[m]
    level = neck[m - 1]
    similar = np.abs(values[p1] - values[p2]) <= tolerance * values[p2]
    fresh = np.arange(n) - p1 <= lookback
    pc = prev(b.close)
    broke = (b.close < level) & (pc >= level) if highs else (b.close > level) & (pc <= level)
    out[have & similar & fresh & broke] = -1.0 if highs else 1.0
    return out


@sensor("double_top_bottom", Family.STRUCTURE, params={"pivot": 3, "lookback": 60, "tolerance": 0.001},
        warmup=lambda p: 2 * p["pivot"] + 1, settle=lambda p: p["lookback"] + p["pivot"], indicators=("MAX", "MIN"))
def double_top_bottom(b: Bars, pivot: int, lookback: int, tolerance: float) -> np.ndarray:
    """Neckline break of a double top (sell) or double bottom (buy) of near-equal swing extremes."""
    out = _double(b, pivot, lookback, tolerance, True) + _double(b, pivot, lookback, tolerance, False)
    out[: 2 * pivot + 1] = np.nan
    return out


@sensor("close_location", Family.STRUCTURE, params={"period": 5}, warmup=lambda p: p["period"] - 1,
        indicators=("SMA",))
def close_location(b: Bars, period: int) -> np.ndarray:
    """Where closes sit in their bars' ranges (top = buyers in control), averaged."""
    return ta.SMA(safe_div((b.close - b.low) - (b.high - b.close), b.high - b.low), period)


# ------------------------------------------------------------------ live twins (last bar only)


@live("nr7")
def _nr7(b: Bars, period: int) -> float:
    rng = b.high[-period - 1:-1] - b.low[-period - 1:-1]  # the previous bar and the ones before it
    if rng[-1] != rng.min():
        return 0.0
    close = b.close[-1]
    return 1.0 if close > b.high[-2] else -1.0 if close < b.low[-2] else 0.0


@live("inside_bar")
def _inside_bar(b: Bars) -> float:
    high, low, close = b.high, b.low, b.close
    if not (high[-2] < high[-3] and low[-2] > low[-3]):
        return 0.0
    return 1.0 if close[-1] > high[-3] else -1.0 if close[-1] < low[-3] else 0.0


@live("higher_highs")
def _higher_highs(b: Bars, period: int) -> float:
    h, lo = b.high[-period - 1:], b.low[-period - 1:]
    up = int(np.count_nonzero((h[1:] > h[:-1]) & (lo[1:] > lo[:-1])))
    down = int(np.count_nonzero((h[1:] < h[:-1]) & (lo[1:] < lo[:-1])))
    return (up - down) / period


@live("close_location")
def _close_location(b: Bars, period: int) -> float:
    t = b.tail(period)
    return float(np.sum(safe_div((t.close - t.low) - (t.high - t.close), t.high - t.low))) / period


def _recent_pivots(values: np.ndarray, k: int, lookback: int, highs: bool) -> np.ndarray:
    """Positions of the pivots ``_pivots`` confirms at bars ≤ n - 2 that are at most ``lookback``
    bars old at the last bar n - 1 (older ones are forgotten by both sensors below), oldest first."""
    i = values.shape[0] - 1
    lo = max(2 * k, i - lookback + k)  # first confirmation bar whose pivot (k bars earlier) is fresh
    if lo > i - 1:
        return np.empty(0, dtype=np.int64)
    extreme = (ta.MAX(values, 2 * k + 1) if highs else ta.MIN(values, 2 * k + 1))[lo:i]
    return np.flatnonzero(values[lo - k: i - k] == extreme) + (lo - k)


@live("sr_break")
def _sr_break(b: Bars, pivot: int, lookback: int) -> float:
    highs, lows = _recent_pivots(b.high, pivot, lookback, True), _recent_pivots(b.low, pivot, lookback, False)
    res = b.high[highs[-1]] if highs.size else math.nan
    sup = b.low[lows[-1]] if lows.size else math.nan
    close, pc = b.close[-1], b.close[-2]
    return float(close > res and pc <= res) - float(close < sup and pc >= sup)


def _double1(b: Bars, k: int, lookback: int, tolerance: float, highs: bool) -> float:
    """``_double`` at the last bar."""
    values, opposite = (b.high, b.low) if highs else (b.low, b.high)
    pos = _recent_pivots(values, k, lookback, highs)
    if pos.size < 2:  # the pair's first pivot would be older than ``lookback``: no pattern
        return 0.0
    p1, p2 = int(pos[-2]), int(pos[-1])
    if not abs(values[p1] - values[p2]) <= tolerance * values[p2]:
        return 0.0
    close, pc = b.close[-1], b.close[-2]
    if highs:
        level = opposite[p1:p2].min()
        return -1.0 if close < level and pc >= level else 0.0
    level = opposite[p1:p2].max()
    return 1.0 if close > level and pc <= level else 0.0


@live("double_top_bottom")
def _double_top_bottom(b: Bars, pivot: int, lookback: int, tolerance: float) -> float:
    return _double1(b, pivot, lookback, tolerance, True) + _double1(b, pivot, lookback, tolerance, False)
