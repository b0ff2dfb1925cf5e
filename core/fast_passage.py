"""First-passage search over candle ranges, for many questions at once (numpy, exact).

A question is "from bar ``start`` to bar ``end`` (inclusive), which is the first bar whose
high reaches ``upper`` or whose low reaches ``lower``?" — the shape of every vote the tracker
judges and of every bracket the fast replay follows. Comparisons are exactly the ones the
event-driven code makes (``high >= upper``, ``low <= lower`` on the same float64 values), so
the answer is the same bar, not an approximation.

Sparse tables of range maxima/minima and binary lifting answer all questions at once in
O(log range) vectorised steps (see ``first_touch``). ``NOT_FOUND`` marks questions whose
range ends untouched.
"""

from __future__ import annotations

import numpy as np

NOT_FOUND = -1


class RangeTables:
    """Sparse tables of one candle series' range maxima/minima: level ``l`` holds the max high
    and min low of the ``2**l`` bars from each index. Built once per series and grown on demand,
    so every question asked of the series (all vote groups, all timeframes) shares them."""

    def __init__(self, high: np.ndarray, low: np.ndarray) -> None:
        self.highs: list[np.ndarray] = [high]
        self.lows: list[np.ndarray] = [low]

    def ensure(self, levels: int) -> None:
        """Build the tables up to ``levels`` levels (level 0 is the series itself)."""
        while len(self.highs) < levels:
            step = 1 << (len(self.highs) - 1)
            h, lo_ = self.highs[-1], self.lows[-1]
            nh, nl = h.copy(), lo_.copy()
            np.maximum(h[:-step], h[step:], out=nh[:-step])
            np.minimum(lo_[:-step], lo_[step:], out=nl[:-step])
            self.highs.append(nh)
            self.lows.append(nl)


def first_touch(high: np.ndarray, low: np.ndarray, start: np.ndarray, end: np.ndarray,
                upper: np.ndarray, lower: np.ndarray, tables: RangeTables | None = None) -> np.ndarray:
    """Index of the first bar in ``[start, end]`` with ``high >= upper`` or ``low <= lower``.

    ``start``/``end`` are int arrays (``end`` < ``len(high)``); a question with ``start > end``
    has no bars and answers ``NOT_FOUND``. Use ``+inf`` / ``-inf`` for a side that must never
    be hit. ``tables``: the series' ``RangeTables`` when many calls ask the same series.

    Sparse tables of range maxima/minima (``2**l`` bars from each index) answer every question
    by binary lifting: from the highest power down, a block that stays inside the range and
    whose max high < upper and min low > lower is untouched and skipped. The first bar not
    skipped is the answer — one vectorised gather per level, O(log range) per question.
    """
    n = len(start)
    out = np.full(n, NOT_FOUND, dtype=np.int64)
    if n == 0:
        return out
    start = start.astype(np.int64)
    end = end.astype(np.int64)
    valid = start <= end
    if not valid.any():
        return out
    span = int((end - start + 1)[valid].max())
    levels = max(1, span.bit_length())
    top = len(high) - 1
    if tables is None:
        tables = RangeTables(high, low)
    tables.ensure(levels)
    highs, lows = tables.highs, tables.lows
    pos = start.copy()
    for level in range(levels - 1, -1, -1):
        width = 1 << level
        inside = pos + (width - 1) <= end
        idx = np.minimum(pos, top)
        clear = inside & (highs[level][idx] < upper) & (lows[level][idx] > lower)
        pos = np.where(clear, pos + width, pos)
    found = valid & (pos <= end)
    out[found] = pos[found]
    return out


def judge_votes(high: np.ndarray, low: np.ndarray, close: np.ndarray, entry_bar: np.ndarray,
                direction: np.ndarray, tp_fraction: float, sl_fraction: float,
                horizon_bars: int, tables: RangeTables | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes of votes made at the close of ``entry_bar`` (1m bar indices), the tracker's way.

    Returns ``(resolved_bar, r, won)``: the bar that resolved each vote (``NOT_FOUND`` if the
    data ends first), its result in stop distances and whether it counts as a win (``tables``:
    see ``first_touch``). Rules of
    ``core/vote_book.py``: judged on bars ``entry+1 … entry+horizon``; stop first when one bar
    reaches both prices; expired at the horizon's close with R = signed return / sl.
    """
    price = close[entry_bar]
    d = direction.astype(np.float64)
    tp_price = price * (1 + d * tp_fraction)
    sl_price = price * (1 - d * sl_fraction)
    long = direction > 0
    upper = np.where(long, tp_price, sl_price)  # long: TP above; short: SL above
    lower = np.where(long, sl_price, tp_price)
    last = len(close) - 1
    start = entry_bar + 1
    horizon_end = entry_bar + horizon_bars
    end = np.minimum(horizon_end, last)
    bar = first_touch(high, low, start, end, upper, lower, tables)
    hit = bar != NOT_FOUND
    bi = np.where(hit, bar, 0)
    sl_hit = np.where(long, low[bi] <= sl_price, high[bi] >= sl_price)  # stop first
    r = np.where(sl_hit, -1.0, tp_fraction / sl_fraction)
    won = ~sl_hit
    expired = ~hit & (horizon_end <= last)
    ei = np.where(expired, horizon_end, 0)
    # the tracker's expression, in its order: direction * (price - entry) / entry / sl
    r_exp = d * (close[ei] - price) / price / sl_fraction
    r = np.where(expired, r_exp, r)
    won = np.where(expired, r_exp > 0, won)
    resolved = np.where(hit, bar, np.where(expired, horizon_end, NOT_FOUND))
    return resolved.astype(np.int64), r, won.astype(bool)
