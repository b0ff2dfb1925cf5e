"""The sensor tracker's scores over a whole replay, vectorised, and exact where it matters.

``core/sensor_tracker.py`` scores a sensor key from its last ``window`` resolved votes
(pooled over symbols, in the order they resolved) plus the recency of its last win. Over a
replay that order is known in advance: a vote made at bar ``i`` of symbol ``s`` resolves at
the bar ``core.fast_passage.judge_votes`` finds, and within one bar the engine feeds symbols
in session order. So every key's outcome sequence is one sorted array, and the tracker's
state before symbol ``s`` decides bar ``i`` is the prefix of events ordered before
``(i, s)``.

Two views of that state:

- ``approx_scores``: the blend for every query at once from rolling sums (numpy). It differs
  from the tracker's ``math.fsum`` arithmetic by rounding only (≈1e-12); ``BlockScores``
  computes the same for every key, bar and symbol of a replay, block by block, which the
  consensus uses to classify bars, flagging any bar within a tolerance of a threshold for an
  exact check.
- ``exact_tracker``: a real ``SensorTracker`` rebuilt (``from_windows``) from the very outcomes
  the engine's tracker would hold at that moment — the real scoring code, bit for bit, for
  decisions, sizing statistics and flagged bars.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from core.sensor_tracker import NEUTRAL_SCORE, SensorTracker, TrackerParams

_DAY_MS = 86_400_000.0
_LN_095 = float(np.log(0.95))


@dataclass(frozen=True)
class KeyEvents:
    """One sensor key's resolved votes in the tracker's order, with prefix statistics.

    ``order[m]`` is ``bar * n_symbols + symbol`` of event ``m`` (sorted); the state before a
    query ``(bar, symbol)`` holds the events with ``order <= bar * n_symbols + symbol`` —
    a candle resolves before that symbol's decision on the same bar.
    """

    order: np.ndarray  # int64, sorted
    r: np.ndarray
    won: np.ndarray
    partial: np.ndarray  # blend without recency after m events (index m = 0 … M)
    last_win_ms: np.ndarray  # int64, -1 = never won, after m events
    # (the resolved votes in the window after m events are min(m, window): no array)

    def prefix(self, bar: np.ndarray, symbol: int | np.ndarray, n_symbols: int) -> np.ndarray:
        """How many events the tracker holds before ``symbol`` decides ``bar``."""
        return np.searchsorted(self.order, np.asarray(bar, dtype=np.int64) * n_symbols + symbol, side="right")


@dataclass(frozen=True)
class PackedEvents:
    """Every key's ``KeyEvents`` in one set of arrays, row (key) after row: row ``k``'s events
    are ``start[k] … start[k+1]-1`` and its prefixes (one more than its events) start at
    ``start[k] + k``. ``row(k)`` is that key's ``KeyEvents`` as views."""

    start: np.ndarray  # (rows + 1,) int64
    order: np.ndarray  # per event, sorted within each row
    r: np.ndarray
    won: np.ndarray
    partial: np.ndarray  # per prefix (events + rows)
    last_win_ms: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.start) - 1

    def row(self, k: int) -> KeyEvents:
        """Row ``k``'s ``KeyEvents`` (views of the packed arrays)."""
        a, b = int(self.start[k]), int(self.start[k + 1])
        return KeyEvents(self.order[a:b], self.r[a:b], self.won[a:b],
                         self.partial[a + k:b + k + 1], self.last_win_ms[a + k:b + k + 1])


def build_key_events(bar: np.ndarray, symbol: np.ndarray, entry_bar: np.ndarray, r: np.ndarray,
                     won: np.ndarray, resolved_ms: np.ndarray, n_symbols: int, p: TrackerParams) -> KeyEvents:
    """One key's ``KeyEvents`` (``pack_events`` with one row)."""
    return pack_events(np.array([len(bar)]), [(bar, symbol, entry_bar, r, won, resolved_ms)], n_symbols, p).row(0)


def pack_events(sizes: np.ndarray, rows: Iterable[tuple[np.ndarray, ...]], n_symbols: int,
                p: TrackerParams) -> PackedEvents:
    """Sort every key's resolutions into the tracker's order and precompute the blend per prefix.

    ``rows``: per key, its resolutions in any order as ``(bar, symbol, entry_bar, r, won,
    resolved_ms)`` (``sizes``: how many each; a key without any has one prefix, empty) — made
    one key at a time by the caller if it likes, so no array of every event is needed
    besides the packed ones. Order within a key: resolving bar, then symbol (session order),
    then the vote's entry bar (a book judges its votes in the order they were made). Key by
    key on purpose: arrays of every event at once (tens of MB each) are mapped afresh and
    page-faulted in, which cost more than the arithmetic; one key's stay in cache.
    """
    n_rows = len(sizes)
    start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_events = int(start[-1])
    order = np.empty(n_events, dtype=np.int64)
    r_out, won_out = np.empty(n_events), np.empty(n_events, dtype=bool)
    partial = np.empty(n_events + n_rows)
    last_win = np.empty(n_events + n_rows, dtype=np.int64)
    k = -1
    for k, (bar, symbol, entry_bar, r, won, resolved_ms) in enumerate(rows):
        a, b = int(start[k]), int(start[k + 1])
        if len(bar) != b - a:
            raise ValueError(f"pack_events: row {k} has {len(bar)} events, sizes says {b - a}")
        idx, cell = _tracker_order(bar, symbol, entry_bar, n_symbols)
        np.take(cell, idx, out=order[a:b])
        np.take(np.asarray(r, dtype=np.float64), idx, out=r_out[a:b])
        np.take(np.asarray(won, dtype=bool), idx, out=won_out[a:b])
        _prefix_blend(r_out[a:b], won_out[a:b], resolved_ms[idx], p,
                      (partial[a + k:b + k + 1], last_win[a + k:b + k + 1]))
    if k != n_rows - 1:
        raise ValueError(f"pack_events: {k + 1} rows given, sizes has {n_rows}")
    return PackedEvents(start, order, r_out, won_out, partial, last_win)


def _tracker_order(bar: np.ndarray, symbol: np.ndarray, entry_bar: np.ndarray,
                   n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.lexsort((entry_bar, symbol, bar))`` as one stable argsort of a single int64 key
    when that fits: the same permutation, ~2.5× faster (one sort instead of three); and each
    event's ``bar * n_symbols + symbol`` (``KeyEvents.order`` once permuted)."""
    cell = bar.astype(np.int64) * n_symbols
    cell += symbol
    if not len(bar):
        return np.zeros(0, dtype=np.int64), cell
    low = int(entry_bar.min())
    span = int(entry_bar.max()) - low + 1
    if (int(bar.max()) + 1) * n_symbols * span >= 1 << 62 or int(bar.min()) < 0 or int(symbol.min()) < 0:
        return np.lexsort((entry_bar, symbol, bar)), cell
    key = cell * span
    key += entry_bar
    key -= low
    return np.argsort(key, kind="stable"), cell


def _prefix_blend(r: np.ndarray, won: np.ndarray, resolved_ms: np.ndarray, p: TrackerParams,
                  out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(partial, last_win_ms) after m = 0 … M events (``out``: arrays of M + 1 to fill).

    The window of prefix m is events ``m - min(m, window) … m-1``: its sums are running sums
    minus the same sums shifted by the window (one subtraction into a fresh array), and its
    length ``min(m, window)`` is the window itself past the first ``window`` prefixes (a scalar
    divisor there). Every array here is one key's, freed before the next key's: the heap
    reuses them."""
    size = len(r) + 1
    partial, last_win = out if out is not None else (np.empty(size), np.empty(size, dtype=np.int64))

    def windowed(x: np.ndarray, window: int, dtype: type = np.float64) -> np.ndarray:
        """The sum of ``x`` over each prefix's window (``running[m] - running[m - min(m, window)]``)."""
        running = np.empty(size, dtype=dtype)
        running[0] = 0
        np.cumsum(x, out=running[1:])
        k = min(window, size)
        d = np.empty(size, dtype=dtype)
        d[:k] = running[:k]
        np.subtract(running[k:], running[:size - k], out=d[k:])
        return d

    def per_vote(total: np.ndarray, window: int) -> np.ndarray:
        """``total / max(min(m, window), 1)`` in place (prefix 0: 0 / 1)."""
        out = total if total.dtype == np.float64 else total.astype(np.float64)
        k = min(window, size)
        out[:k] /= np.maximum(np.arange(k), 1)
        out[k:] /= window
        return out

    e_score = per_vote(windowed(r, p.window), p.window)
    e_score *= 0.5
    e_score += 0.5
    np.clip(e_score, 0.0, 1.0, out=e_score)
    np.multiply(e_score, p.weight_expectancy, out=partial)
    # (np.maximum / np.minimum with 0: one pass each instead of a test and a where; they keep a
    # -0.0 where the where gave 0.0, which adds and compares as 0.0)
    gross_win = windowed(np.maximum(r, 0.0), p.window)
    gross_loss = windowed(np.minimum(r, 0.0), p.window)
    np.negative(gross_loss, out=gross_loss)
    partial += _profit_factor_scores(gross_win, gross_loss, p.weight_profit_factor)
    # streak: length of the run of equal outcomes ending with the newest event, inside the window
    streak_score = np.empty(size)
    streak_score[0] = 0.5 * p.weight_streak
    if size > 1:
        # the score saturates at a run of 5 wins or 3 losses, and the window's length, min(m,
        # window), is at least the run's: so the run is only counted up to cap, in bytes (one
        # more for each earlier event equal to all the later ones), and the score is one lookup
        # in the weighted scores of runs 0 … cap (losses, then wins), the very products the
        # formula per event gave
        cap = min(p.window, 5)
        same = np.zeros(size - 1, dtype=bool)  # event i repeats event i-1's outcome
        np.equal(won[1:], won[:-1], out=same[1:])
        run_len = np.ones(size - 1, dtype=np.int8)
        chain = same.copy()
        for j in range(1, cap):
            run_len += chain
            if j + 1 < cap:  # chain[i]: events i-j-1 … i all alike
                chain[j + 1:] &= same[1:size - 1 - j]
                chain[:j + 1] = False
        run_len += won.view(np.int8) * np.int8(cap + 1)
        lengths = np.arange(cap + 1)
        table = np.concatenate([0.5 - np.minimum(lengths / 3.0, 0.5), 0.5 + np.minimum(lengths / 5.0, 0.5)])
        table *= p.weight_streak
        np.take(table, run_len, out=streak_score[1:])
    partial += streak_score
    recent_wr = per_vote(windowed(won, p.recent_window, np.int64), p.recent_window)
    recent_wr *= p.weight_recent_win_rate
    partial += recent_wr
    last_win[0] = -1
    np.maximum.accumulate(np.where(won, resolved_ms, -1), out=last_win[1:])
    return partial, last_win


def _profit_factor_scores(gross_win: np.ndarray, gross_loss: np.ndarray, weight: float) -> np.ndarray:
    """``weight * profit_factor_score(gross_win, gross_loss)`` per element (``core.sensor_tracker``),
    its branches' arithmetic in place: PF ≥ 1 → 0.5 + min((PF − 1)/2, 0.5), PF < 1 → PF / 2,
    no losses (a key's first prefixes, few) → 1.0 if anything was won, else 0.5."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pf = np.divide(gross_win, gross_loss)
    high = pf - 1.0
    high /= 2.0
    np.minimum(high, 0.5, out=high)
    high += 0.5
    pf *= 0.5
    np.copyto(pf, high, where=pf >= 0.5)  # pf >= 1.0, halved exactly
    lossless = np.flatnonzero(~(gross_loss > 0))
    pf[lossless] = np.where(gross_win[lossless] > 0, 1.0, 0.5)
    pf *= weight
    return pf


def approx_scores(ev: KeyEvents, m: np.ndarray, now_ms: np.ndarray, p: TrackerParams,
                  out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(score, neutral) after ``m`` events at market time ``now_ms``; ``neutral`` marks the
    exact 0.5 given below ``min_resolved_votes`` (no rounding involved). ``out``: arrays
    to write them into (computed in place, no temporaries)."""
    score, neutral = out if out is not None else (np.empty(len(m)), np.empty(len(m), dtype=bool))
    np.less(np.minimum(m, p.window), p.min_resolved_votes, out=neutral)
    lw = ev.last_win_ms[m]
    recency = np.subtract(now_ms, lw, dtype=np.float64)
    recency /= _DAY_MS
    # 0.95 ** min(max(0, d), 30) as exp(d ln 0.95): equal to rounding, far inside the consensus tolerance
    np.clip(recency, 0.0, 30.0, out=recency)
    recency *= _LN_095
    np.exp(recency, out=recency)
    recency[lw < 0] = 0.5
    recency *= p.weight_recency
    np.add(ev.partial[m], recency, out=score)
    np.clip(score, 0.0, 1.0, out=score)
    score[neutral] = NEUTRAL_SCORE
    return score, neutral


class BlockScores:
    """Approximate scores of many keys (rows) for every (bar, symbol) of a replay, a block of
    bars at a time: the consensus of all symbols at once.

    A block holds ``bars_per_block`` consecutive bars ``g0 …`` of every symbol as columns
    ``(g - g0) * n_symbols + symbol`` — the tracker's order of ``KeyEvents.order`` — so along
    a row the events held only grow: each prefix a row passes through in the block (the one
    it holds before the block, then one more per event resolving in it) covers a run of
    columns, from its event's column to the next one's (``_segments``). A block's scores are
    then each prefix's terms, computed once per prefix, repeated over its run (``np.repeat``
    writes the (rows × columns) matrix sequentially), and a few calls over that matrix: no
    per-cell prefix count or gather, and no array of every prefix beside ``PackedEvents``'
    own. A row without events scores the neutral 0.5 everywhere, as an unseen key does.

    The recency term needs no ``exp`` per (key, column): ``0.95 ** ((now - last_win) / day)``
    is ``A(now) · E(last_win)`` with ``A = 0.95 ** ((now - ref) / day)`` per column and
    ``E = 0.95 ** ((ref - last_win) / day)`` per prefix, and its 30-day floor is a ``max``
    (the power only falls with age). Same scores as ``approx_scores`` to rounding (≈1e-14,
    the factors' exponents reach ±35 over a 700-day replay), far inside ``TOLERANCE``.
    """

    def __init__(self, packed: PackedEvents, n_symbols: int, n_bars: int, bars_per_block: int,
                 params: TrackerParams, ref_ms: int) -> None:
        """``ref_ms``: a time no later than any event's resolution or any query's ``now``."""
        if n_bars * 60_000 / _DAY_MS * -_LN_095 > 700:  # 1m bars
            # exp(±700) is float64's range; 1m bars over ~37 years would need another reference per era
            raise ValueError(f"BlockScores: {n_bars:,} bars span too long a time for one recency reference")
        self.packed = packed
        self.n_symbols = n_symbols
        self.n_bars = n_bars  # bars 0 … n_bars are asked
        self.bars_per_block = b_len = bars_per_block
        self.n_blocks = n_blocks = -(-(n_bars + 1) // b_len)
        n_rows = packed.rows
        self.width = width = b_len * n_symbols  # columns of a full block
        self.offset = packed.start[:-1] + np.arange(n_rows)  # each row's prefix 0
        self.weight = params.weight_recency
        self.ref_ms = ref_ms
        self.floor = self.weight * math.exp(30.0 * _LN_095)
        # neutral below min_resolved_votes resolved votes in the window: count = min(m, window)
        self.neutral_below = params.min_resolved_votes if params.window >= params.min_resolved_votes else 2**62
        # row k's events before block b: order < that block's first column (bar g0 = b·bars,
        # symbol 0); the rows are sorted, so a binary search per row finds every block's edge
        edges = width * np.arange(n_blocks + 1, dtype=np.int64)
        self.edge = np.empty((n_rows, n_blocks + 1), dtype=np.int64)
        for k in range(n_rows):
            self.edge[k] = np.searchsorted(packed.order[packed.start[k]:packed.start[k + 1]], edges)

    def bars(self, b: int) -> tuple[int, int]:
        """The bars ``[g0, g1)`` of block ``b``."""
        g0 = b * self.bars_per_block
        return g0, min(g0 + self.bars_per_block, self.n_bars + 1)

    def _segments(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block ``b``'s runs, row after row: (prefix slot in ``PackedEvents``' prefix arrays,
        its index within its row, how many columns it covers); each row's runs cover the
        block's columns once."""
        g0, g1 = self.bars(b)
        cols = (g1 - g0) * self.n_symbols
        n_rows = len(self.offset)
        before, after = self.edge[:, b], self.edge[:, b + 1]
        per_row = after - before  # events resolving in the block
        n_events = int(per_row.sum())
        row = np.repeat(np.arange(n_rows), per_row)
        earlier = np.cumsum(per_row) - per_row  # the block's events of the rows before
        event = np.arange(n_events) + np.repeat(self.packed.start[:-1] + before - earlier, per_row)
        # a row's runs: its prefix before the block from column 0, then one from each event's column
        heads = earlier + np.arange(n_rows)
        cuts = np.empty(n_events + n_rows + 1, dtype=np.int64)
        cuts[heads] = np.arange(n_rows) * cols
        column = self.packed.order[event]
        column -= b * self.width
        np.minimum(column, cols, out=column)  # (none lies past the last bar asked; kept in its row if one did)
        column += row * cols
        cuts[np.arange(n_events) + row + 1] = column
        cuts[-1] = n_rows * cols
        local = np.arange(n_events + n_rows) + np.repeat(before - heads, per_row + 1)
        return local + np.repeat(self.offset, per_row + 1), local, np.diff(cuts)

    def prefix(self, b: int) -> np.ndarray:
        """(rows × columns) events each row holds at each column of block ``b`` (``KeyEvents.prefix``)."""
        _, local, runs = self._segments(b)
        return np.repeat(local, runs).reshape(len(self.offset), -1)

    def scores(self, b: int, now_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, neutral) of every row at every column of block ``b`` (``approx_scores``);
        ``now_ms``: market time per column."""
        slot, local, runs = self._segments(b)
        n_rows = len(self.offset)
        last_win = self.packed.last_win_ms[slot]
        never = last_win < 0
        # per prefix: w·E where the key has won, else 0 (the max() then gives the floor) with
        # the never-won recency 0.5 moved into the constant part
        recency = np.subtract(self.ref_ms, last_win, dtype=np.float64)
        recency /= _DAY_MS
        recency *= _LN_095
        np.exp(recency, out=recency)
        recency *= self.weight
        recency[never] = 0.0
        constant = self.packed.partial[slot]
        constant[never] += self.weight * 0.5 - self.floor
        score = np.repeat(recency, runs).reshape(n_rows, -1)
        score *= np.exp((np.asarray(now_ms, dtype=np.int64) - self.ref_ms) / _DAY_MS * _LN_095)
        np.maximum(score, self.floor, out=score)
        score += np.repeat(constant, runs).reshape(n_rows, -1)
        np.clip(score, 0.0, 1.0, out=score)
        neutral_runs = local < self.neutral_below
        if neutral_runs.any():  # only where a key has fewer resolved votes: the replay's first bars, rare keys
            neutral = np.repeat(neutral_runs, runs).reshape(n_rows, -1)
            score[neutral] = NEUTRAL_SCORE
        else:
            neutral = np.zeros(score.shape, dtype=bool)
        return score, neutral


def approx_score(ev: KeyEvents, m: int, now_ms: int, p: TrackerParams) -> float:
    """``approx_scores`` for one query, in Python scalars (same arithmetic, same tolerance)."""
    if min(m, p.window) < p.min_resolved_votes:
        return NEUTRAL_SCORE
    lw = int(ev.last_win_ms[m])
    recency = 0.5 if lw < 0 else math.exp(min(max(0.0, (now_ms - lw) / _DAY_MS), 30.0) * _LN_095)
    return min(1.0, max(0.0, float(ev.partial[m]) + p.weight_recency * recency))


def exact_tracker(events: Mapping[str, KeyEvents], bar: int, symbol: int, n_symbols: int,
                  now_ms: int, params: TrackerParams, keys: Iterable[str]) -> SensorTracker:
    """A real ``SensorTracker`` holding exactly what the engine's holds when ``symbol`` decides
    ``bar`` (for ``keys``; other keys are irrelevant to that decision).

    Built from each key's window as floats, split into wins and losses with numpy
    (``SensorTracker.from_windows``): the tracker ``from_dict`` rebuilds from a state of those
    outcomes, for a fraction of the cost — a decision rebuilds ~65 keys × 200 outcomes, which
    through ``from_dict`` was most of the trade phase (1 symbol × 1 M bars: ~360 decisions,
    ~2 s). tests/test_fast_tracker.py holds both to the engine-fed tracker's windows."""
    windows: dict[str, tuple[list[float], list[float], list[float], int | None]] = {}
    for key in dict.fromkeys(keys):
        ev = events.get(key)
        if ev is None:
            continue
        m = int(ev.order.searchsorted(bar * n_symbols + symbol, side="right"))  # ``prefix``, one query
        if m == 0:
            continue
        lo = max(0, m - params.window)
        rs = ev.r[lo:m]
        won = ev.won[lo:m]
        if not np.array_equal(won, rs > 0):  # the tracker's invariant (from_dict checks it too)
            raise ValueError(f"fast tracker: an outcome of {key} is marked won although its R is not > 0, or not")
        lw = int(ev.last_win_ms[m])
        windows[key] = (rs.tolist(), rs[won].tolist(), rs[~won].tolist(), None if lw < 0 else lw)
    return SensorTracker.from_windows(params, now_ms, windows)
