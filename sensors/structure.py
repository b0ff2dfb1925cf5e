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
from sensors.shape import (
    count1, float1, nan_if, safe_div, where1,
)


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
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``).
# Comparisons and counts only: scaling a symbol's prices changes none of them.


@live("nr7", stacked=True)
def _nr7(b: Bars, period: int) -> float:
    rng = b.high[-period - 1:-1] - b.low[-period - 1:-1]  # the previous bar and the ones before it
    close = b.close[-1]
    breakout = where1(close > b.high[-2], 1.0, where1(close < b.low[-2], -1.0, 0.0))
    return where1(rng[-1] == rng.min(axis=0), breakout, 0.0)


@live("inside_bar", stacked=True)
def _inside_bar(b: Bars) -> float:
    high, low, close = b.high, b.low, b.close
    breakout = where1(close[-1] > high[-3], 1.0, where1(close[-1] < low[-3], -1.0, 0.0))
    return where1((high[-2] < high[-3]) & (low[-2] > low[-3]), breakout, 0.0)


@live("higher_highs", stacked=True)
def _higher_highs(b: Bars, period: int) -> float:
    h, lo = b.high[-period - 1:], b.low[-period - 1:]
    up = count1((h[1:] > h[:-1]) & (lo[1:] > lo[:-1]))
    down = count1((h[1:] < h[:-1]) & (lo[1:] < lo[:-1]))
    return (up - down) / period


@live("close_location", stacked=True)
def _close_location(b: Bars, period: int) -> float:
    t = b.tail(period)
    return np.sum(safe_div((t.close - t.low) - (t.high - t.close), t.high - t.low), axis=0) / period


def _recent_pivots(values: np.ndarray, k: int, lookback: int, highs: bool) -> np.ndarray | None:
    """Which bars are pivots ``_pivots`` confirms at bars ≤ n - 2 and at most ``lookback`` bars old
    at the last bar n - 1 (older ones are forgotten by both sensors below): a bool (m, S) mask over
    bars ``n - 1 - m … n - 2`` (shape (m,) for one symbol), or None when no bar qualifies."""
    i = values.shape[0] - 1
    lo = max(2 * k, i - lookback + k)  # first confirmation bar whose pivot (k bars earlier) is fresh
    if lo > i - 1:
        return None
    extreme = (ta.MAX(values, 2 * k + 1) if highs else ta.MIN(values, 2 * k + 1))[lo:i]
    return values[lo - k: i - k] == extreme


def _last_two(mask: np.ndarray) -> tuple[int | np.ndarray, int | np.ndarray, int | np.ndarray]:
    """Per symbol: (how many True, row of the last True, row of the one before; 0 if absent)."""
    if mask.ndim == 1:  # one symbol: plain ints
        rows = np.flatnonzero(mask)
        n = int(rows.size)
        return n, int(rows[-1]) if n else 0, int(rows[-2]) if n >= 2 else 0
    count = np.cumsum(mask, axis=0)  # the last True sits where the running count first reaches the total
    total = count[-1]
    last = np.argmax(count >= total, axis=0)
    before = np.argmax(count >= total - 1, axis=0)
    return total, last, np.minimum(before, mask.shape[0] - 1)


def _take(values: np.ndarray, rows: np.ndarray | int) -> np.ndarray | float:
    """values[rows] per symbol: ``rows`` holds one row index per column of a (W, S) ``values``."""
    if values.ndim == 1:
        return values[rows]
    return values[rows, np.arange(values.shape[1])]


@live("sr_break", stacked=True)
def _sr_break(b: Bars, pivot: int, lookback: int) -> float:
    close, pc = b.close[-1], b.close[-2]
    out = 0.0
    for values, highs in ((b.high, True), (b.low, False)):
        mask = _recent_pivots(values, pivot, lookback, highs)
        if mask is None:
            continue  # no level: NaN compares false, as in the array function
        start = values.shape[0] - 1 - mask.shape[0] - pivot  # the bar of mask row 0's pivot
        count, last, _ = _last_two(mask)
        level = where1(count >= 1, _take(values, start + last), math.nan)
        if highs:  # close breaking above the last swing high (resistance)
            out = out + float1((close > level) & (pc <= level))
        else:  # or below the last swing low (support)
            out = out - float1((close < level) & (pc >= level))
    return out


def _neckline(opposite: np.ndarray, p1: int | np.ndarray, p2: int | np.ndarray, highs: bool) -> float | np.ndarray:
    """The other side's extreme over bars p1 … p2 - 1 (per symbol for (W, S) columns)."""
    if opposite.ndim == 1:
        return opposite[p1:p2].min() if highs else opposite[p1:p2].max()
    rows = np.arange(opposite.shape[0])[:, None]
    between = (rows >= p1) & (rows < p2)
    if highs:
        return np.where(between, opposite, np.inf).min(axis=0)
    return np.where(between, opposite, -np.inf).max(axis=0)


def _double1(b: Bars, k: int, lookback: int, tolerance: float, highs: bool) -> float | np.ndarray:
    """``_double`` at the last bar."""
    values, opposite = (b.high, b.low) if highs else (b.low, b.high)
    mask = _recent_pivots(values, k, lookback, highs)
    if mask is None:
        return 0.0
    count, last, before = _last_two(mask)
    if values.ndim == 1 and count < 2:  # the pair's first pivot would be older than ``lookback``: no pattern
        return 0.0
    start = values.shape[0] - 1 - mask.shape[0] - k
    p1, p2 = start + before, start + last
    v1, v2 = _take(values, p1), _take(values, p2)
    similar = abs(v1 - v2) <= tolerance * v2
    pattern = similar if values.ndim == 1 else similar & (count >= 2)
    level = _neckline(opposite, p1, p2, highs)
    close, pc = b.close[-1], b.close[-2]
    if highs:
        return where1(pattern & (close < level) & (pc >= level), -1.0, 0.0)
    return where1(pattern & (close > level) & (pc <= level), 1.0, 0.0)


@live("double_top_bottom", stacked=True)
def _double_top_bottom(b: Bars, pivot: int, lookback: int, tolerance: float) -> float:
    return _double1(b, pivot, lookback, tolerance, True) + _double1(b, pivot, lookback, tolerance, False)
