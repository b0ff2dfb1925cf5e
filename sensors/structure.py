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
from sensors.shape import count1, float1, nan_if, prev, safe_div, where1


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
