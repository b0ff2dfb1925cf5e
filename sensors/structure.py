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
from sensors.shape import nan_if, safe_div


@sensor("nr7", Family.STRUCTURE, params={"period": 7}, warmup=lambda p: p["period"], indicators=("MIN",))
def nr7(b: Bars, period: int) -> np.ndarray:
    """Breakout of a bar that had the narrowest range of the last ``period`` bars."""
    rng = b.high - b.low
    narrowest = ta.MIN(rng, period)
    out = np.empty(rng.shape[0])
    out[:1] = np.nan  # no previous bar
    # bar i reads bar i - 1 through slices (no shifted copies): was it the narrowest, and did
    # this close leave its range?
    narrow = rng[:-1] == narrowest[:-1]
    close = b.close[1:]
    up = narrow & (close > b.high[:-1])
    narrow &= close < b.low[:-1]
    np.subtract(up, narrow, out=out[1:], dtype=np.float64)
    nan_if(out[1:], narrowest[:-1])
    return out


@sensor("inside_bar", Family.STRUCTURE, warmup=lambda p: 2)
def inside_bar(b: Bars) -> np.ndarray:
    """Close beyond the mother bar after an inside bar."""
    high, low = b.high, b.low
    out = np.empty(high.shape[0])
    out[:2] = np.nan  # no mother bar yet
    mother_high, mother_low, close = high[:-2], low[:-2], b.close[2:]
    inside = (high[1:-1] < mother_high) & (low[1:-1] > mother_low)
    up = inside & (close > mother_high)
    inside &= close < mother_low
    np.subtract(up, inside, out=out[2:], dtype=np.float64)
    nan_if(out[2:], mother_high)
    return out


@sensor("higher_highs", Family.STRUCTURE, params={"period": 3}, warmup=lambda p: p["period"], indicators=("SUM",))
def higher_highs(b: Bars, period: int) -> np.ndarray:
    """Share of the last bars making higher highs and higher lows (+) or lower ones (-)."""
    high, low = b.high, b.low
    votes = np.empty(high.shape[0])  # +1 higher high and low, -1 lower ones, 0 neither
    votes[:1] = np.nan  # no previous bar
    up = (high[1:] > high[:-1]) & (low[1:] > low[:-1])
    down = (high[1:] < high[:-1]) & (low[1:] < low[:-1])
    np.subtract(up, down, out=votes[1:], dtype=np.float64)
    nan_if(votes[1:], high[:-1])
    # one window sum of the ±1 votes: the counts are small integers, so SUM(up) - SUM(down)
    # and SUM(up - down) are the same exact numbers
    out = ta.SUM(votes, period)
    return np.divide(out, period)


def _pivots(values: np.ndarray, k: int, highs: bool) -> np.ndarray:
    """Per bar j: True where the bar k bars earlier is confirmed as a pivot — the extreme of the
    2k + 1 bars centred on it (``extreme[j]`` covers bars j - 2k … j)."""
    extreme = ta.MAX(values, 2 * k + 1) if highs else ta.MIN(values, 2 * k + 1)
    confirmed = np.zeros(values.shape[0], dtype=bool)
    confirmed[2 * k:] = values[k: values.shape[0] - k] == extreme[2 * k:]
    return confirmed


def _per_segment(n: int, confirmed_at: np.ndarray, level: np.ndarray, last_fresh: np.ndarray) -> np.ndarray:
    """Per bar i: ``level[t]`` for the pivot t most recently confirmed before i (bars
    ``confirmed_at[t] + 1 … confirmed_at[t + 1]``) while ``i <= last_fresh[t]``, else NaN; NaN
    before the first confirmation. Built with one ``np.repeat`` over the segments' fresh and
    stale parts: no per-bar running count or gathers."""
    starts = confirmed_at + 1
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = n
    np.minimum(starts, n, out=starts)  # a pivot confirmed at the last bar opens an empty segment
    fresh_end = np.clip(last_fresh + 1, starts, ends)
    lengths = np.empty(2 * starts.shape[0] + 1, dtype=np.int64)
    lengths[0] = starts[0]  # bars before the first confirmation
    lengths[1::2] = fresh_end - starts
    lengths[2::2] = ends - fresh_end
    values = np.full(lengths.shape[0], np.nan)
    values[1::2] = level
    return np.repeat(values, lengths)


def _crossing(close: np.ndarray, level: np.ndarray, upwards: bool) -> np.ndarray:
    """Per bar: the close crossed ``level`` (NaN: no level) from the previous close, upwards
    (close > level ≥ previous close) or downwards (close < level ≤ previous close)."""
    out = np.zeros(close.shape[0], dtype=bool)
    now, before, lv = close[1:], close[:-1], level[1:]
    if upwards:
        np.greater(now, lv, out=out[1:])
        out[1:] &= before <= lv
    else:
        np.less(now, lv, out=out[1:])
        out[1:] &= before >= lv
    return out


def _last_level(values: np.ndarray, k: int, lookback: int, highs: bool) -> np.ndarray:
    """Per bar: the most recent pivot confirmed before it and at most ``lookback`` bars old, else NaN."""
    confirmed_at = np.flatnonzero(_pivots(values, k, highs))
    if confirmed_at.size == 0:
        return np.full(values.shape[0], np.nan)
    pos = confirmed_at - k
    return _per_segment(values.shape[0], confirmed_at, values[pos], pos + lookback)


@sensor("sr_break", Family.STRUCTURE, params={"pivot": 3, "lookback": 100},
        warmup=lambda p: 2 * p["pivot"] + 1, settle=lambda p: p["lookback"] + p["pivot"], indicators=("MAX", "MIN"))
def sr_break(b: Bars, pivot: int, lookback: int) -> np.ndarray:
    """Close breaking above the last swing high (resistance) or below the last swing low (support)."""
    up = _crossing(b.close, _last_level(b.high, pivot, lookback, True), True)
    down = _crossing(b.close, _last_level(b.low, pivot, lookback, False), False)
    out = np.subtract(up, down, dtype=np.float64)
    out[: 2 * pivot + 1] = np.nan
    return out


def _double(b: Bars, k: int, lookback: int, tolerance: float, highs: bool) -> np.ndarray:
    """True on the bar whose close breaks the neckline of a double top (``highs``) or bottom."""
    values, opposite = (b.high, b.low) if highs else (b.low, b.high)
    n = values.shape[0]
    confirmed_at = np.flatnonzero(_pivots(values, k, highs))
    if confirmed_at.size < 2:
        return np.zeros(n, dtype=bool)
    pos = confirmed_at - k
    # extreme of the other side between consecutive pivots: the neckline of each pair
    neck = (np.minimum if highs else np.maximum).reduceat(opposite, pos)[:-1]
    first, second = values[pos[:-1]], values[pos[1:]]
    similar = np.abs(first - second) <= tolerance * second
    # after pivot t is confirmed the pair (t - 1, t) is armed while similar and fresh
    level = np.empty(pos.shape[0])
    level[0] = np.nan  # one pivot is no pair
    level[1:] = np.where(similar, neck, np.nan)
    last_fresh = np.empty_like(pos)
    last_fresh[0] = -1
    last_fresh[1:] = pos[:-1] + lookback  # the pair's first pivot at most ``lookback`` bars old
    return _crossing(b.close, _per_segment(n, confirmed_at, level, last_fresh), not highs)


@sensor("double_top_bottom", Family.STRUCTURE, params={"pivot": 3, "lookback": 60, "tolerance": 0.001},
        warmup=lambda p: 2 * p["pivot"] + 1, settle=lambda p: p["lookback"] + p["pivot"], indicators=("MAX", "MIN"))
def double_top_bottom(b: Bars, pivot: int, lookback: int, tolerance: float) -> np.ndarray:
    """Neckline break of a double top (sell) or double bottom (buy) of near-equal swing extremes."""
    bottom = _double(b, pivot, lookback, tolerance, False)
    top = _double(b, pivot, lookback, tolerance, True)
    out = np.subtract(bottom, top, dtype=np.float64)
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
