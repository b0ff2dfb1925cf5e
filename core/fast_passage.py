"""First-passage search over candle ranges, for many questions at once (numpy, exact).

A question is "from bar ``start`` to bar ``end`` (inclusive), which is the first bar whose
high reaches ``upper`` or whose low reaches ``lower``?" — the shape of every vote the tracker
judges and of every bracket the fast replay follows. Comparisons are exactly the ones the
event-driven code makes (``high >= upper``, ``low <= lower`` on the same float64 values), so
the answer is the same bar, not an approximation.

The scan is chunked: all open questions look at the next ``width`` bars in one gather, the
answered ones drop out, and the width doubles for the rest, so a question costs about the
number of bars until its answer (most votes resolve within a few bars) with numpy doing the
work. ``NOT_FOUND`` marks questions whose range ends untouched.
"""

from __future__ import annotations

import numpy as np

NOT_FOUND = -1
_FIRST_WIDTH = 16
_MAX_WIDTH = 4096


def first_touch(high: np.ndarray, low: np.ndarray, start: np.ndarray, end: np.ndarray,
                upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Index of the first bar in ``[start, end]`` with ``high >= upper`` or ``low <= lower``.

    ``start``/``end`` are int arrays (``end`` clipped to the data by the caller); a question
    with ``start > end`` has no bars and answers ``NOT_FOUND``. Use ``+inf`` / ``-inf`` for a
    side that must never be hit.
    """
    n = len(start)
    out = np.full(n, NOT_FOUND, dtype=np.int64)
    todo = np.flatnonzero(start <= end)
    pos = start.astype(np.int64).copy()
    width = _FIRST_WIDTH
    last = len(high) - 1
    while todo.size:
        base = pos[todo]
        offsets = np.arange(width, dtype=np.int64)
        idx = base[:, None] + offsets[None, :]
        valid = idx <= end[todo][:, None]
        idx_c = np.minimum(idx, last)
        hit = ((high[idx_c] >= upper[todo][:, None]) | (low[idx_c] <= lower[todo][:, None])) & valid
        any_hit = hit.any(axis=1)
        first = hit.argmax(axis=1)
        found = todo[any_hit]
        out[found] = base[any_hit] + first[any_hit]
        rest = ~any_hit
        nxt = base[rest] + width
        still = nxt <= end[todo[rest]]
        todo = todo[rest][still]
        pos[todo] = nxt[still]
        width = min(width * 2, _MAX_WIDTH)
    return out


def judge_votes(high: np.ndarray, low: np.ndarray, close: np.ndarray, entry_bar: np.ndarray,
                direction: np.ndarray, tp_fraction: float, sl_fraction: float,
                horizon_bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes of votes made at the close of ``entry_bar`` (1m bar indices), the tracker's way.

    Returns ``(resolved_bar, r, won)``: the bar that resolved each vote (``NOT_FOUND`` if the
    data ends first), its result in stop distances and whether it counts as a win. Rules of
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
    bar = first_touch(high, low, start, end, upper, lower)
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
