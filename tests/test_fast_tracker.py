"""The vectorised tracker (first passage, stop first, ordered outcomes, blended scores) against
``core.vote_book`` / ``core.sensor_tracker`` fed bar by bar on real recorded candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.events import SensorReading
from core.fast_passage import NOT_FOUND, first_touch, judge_votes
from core.fast_tracker import BlockScores, approx_scores, build_key_events, exact_tracker, pack_events
from core.history import load_candles
from core.sensor_tracker import SensorTracker, TrackerParams, sensor_key
from core.types import Timeframe
from core.vote_book import OpenVote, Outcome, VoteBook
from sensors.base import Bars
from sensors.registry import builtin_sensors

M = 60_000
N = 3000


def _series(data_dir: Path, symbol: str):  # noqa: ANN202 - a CandleSeries
    s = load_candles(data_dir / "futures-2023" / f"{symbol}-1m.csv.gz", symbol=symbol, timeframe=Timeframe.M1)
    from dataclasses import replace

    return replace(s, open_time=s.open_time[:N], open=s.open[:N], high=s.high[:N], low=s.low[:N],
                   close=s.close[:N], volume=s.volume[:N])


def test_first_touch_scans_inclusive_ranges() -> None:
    high = np.array([1.0, 2.0, 3.0, 2.0, 5.0])
    low = np.array([0.5, 1.5, 2.5, 0.1, 4.0])
    got = first_touch(high, low, np.array([0, 0, 3, 4, 2]), np.array([4, 1, 4, 3, 2]),
                      np.array([2.5, 9.0, 4.5, 1.0, 3.0]), np.array([-1.0, 0.0, 0.2, 0.0, 0.0]))
    assert got.tolist() == [2, NOT_FOUND, 3, NOT_FOUND, 2]


@pytest.mark.parametrize("tp, sl, horizon, same_bar", [(0.003, 0.002, 60, False), (0.0008, 0.0006, 30, True)])
def test_judge_votes_equals_the_vote_book(data_dir: Path, tp: float, sl: float, horizon: int, same_bar: bool) -> None:
    s = _series(data_dir, "BTCUSDT")
    rng = np.random.default_rng(7)
    entries = np.sort(rng.choice(N - 1, size=600, replace=False))
    direction = rng.choice([-1, 1], size=len(entries))
    resolved, r, won = judge_votes(s.high, s.low, s.close, entries, direction, tp, sl, horizon)

    book = VoteBook()
    seq_of: dict[int, int] = {}
    got: dict[int, tuple[int, float, bool]] = {}
    both_in_one_bar = 0
    pending = dict(zip(entries.tolist(), range(len(entries)), strict=True))
    for j in range(N):
        t = int(s.open_time[j])
        for judged in book.judge(t, t + M, float(s.open[j]), float(s.high[j]), float(s.low[j]), float(s.close[j])):
            k = seq_of[judged.vote.entry_ms]
            won_ = judged.outcome is Outcome.WIN or (judged.outcome is Outcome.EXPIRED and judged.r > 0)
            got[k] = (j, judged.r, won_)
            v = judged.vote
            if judged.outcome is Outcome.LOSS and (
                    (v.direction > 0 and s.high[j] >= v.tp_price) or (v.direction < 0 and s.low[j] <= v.tp_price)):
                both_in_one_bar += 1
        if j in pending:
            k = pending[j]
            entry_ms = t + M
            seq_of[entry_ms] = k
            book.add(OpenVote("k", "BTCUSDT", int(direction[k]), entry_ms, float(s.close[j]), tp, sl,
                              entry_ms + horizon * M))
    for k in range(len(entries)):
        if k in got:
            assert (int(resolved[k]), float(r[k]), bool(won[k])) == got[k], k
        else:
            assert resolved[k] == NOT_FOUND
    if same_bar:
        assert both_in_one_bar > 0  # tight distances: the stop-first rule was exercised


def test_scores_equal_the_sensor_tracker(data_dir: Path) -> None:
    symbols = ["BTCUSDT", "BNBUSDT"]
    series = [_series(data_dir, "BTCUSDT"), _series(data_dir, "BNBUSDT")]
    t0 = max(int(x.open_time[0]) for x in series)
    series = [x if int(x.open_time[0]) == t0 else None for x in series]
    assert all(x is not None for x in series)  # both files start at the same minute
    specs = builtin_sensors()
    names = ["ema_cross", "macd_cross", "rsi14"]
    params = TrackerParams(horizon_bars=30, window=50, recent_window=10, min_resolved_votes=5)
    tp, sl = 0.004, 0.003
    signals = [{n: specs[n].compute(Bars(x.open, x.high, x.low, x.close, x.volume)) for n in names} for x in series]

    per_key: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for si, (x, sig) in enumerate(zip(series, signals, strict=True)):
        for n in names:
            v = sig[n]
            bars = np.flatnonzero(~np.isnan(v) & (v != 0))
            d = np.where(v[bars] > 0, 1, -1)
            res, r, won = judge_votes(x.high, x.low, x.close, bars, d, tp, sl, params.horizon_bars)
            ok = res != NOT_FOUND
            per_key.setdefault(sensor_key(n, Timeframe.M1), []).append(
                (res[ok], np.full(int(ok.sum()), si), bars[ok], r[ok], won[ok], x.open_time[res[ok]] + M))
    events = {k: build_key_events(*[np.concatenate([p[c] for p in parts]) for c in range(6)], len(symbols), params)
              for k, parts in per_key.items()}

    tracker = SensorTracker(params)
    keys = list(events)
    checked = 0
    for i in range(N):
        for si, (x, sig) in enumerate(zip(series, signals, strict=True)):
            tracker.on_candle(x.candle(i))
            if i % 97 == 0:
                now = int(x.open_time[i]) + M
                exact = exact_tracker(events, i, si, len(symbols), now, params, keys)
                for key in keys:
                    ev = events[key]
                    m = ev.prefix(np.array([i]), si, len(symbols))
                    approx, _neutral = approx_scores(ev, m, np.array([now]), params)
                    assert exact.score(key) == tracker.score(key), (i, si, key)
                    assert abs(float(approx[0]) - tracker.score(key)) < 1e-12
                assert exact.performance(keys) == tracker.performance(keys)
                # the very windows the engine's tracker holds, and what from_dict rebuilds of them
                state = tracker.to_dict()
                assert exact.to_dict()["history"] == state["history"]
                restored = SensorTracker.from_dict({**state, "open": [], "last_recorded": []}, params)
                assert [restored.score(k) for k in keys] == [exact.score(k) for k in keys]
                checked += 1
            readings = [SensorReading(n, symbols[si], Timeframe.M1, int(x.open_time[i]), float(sig[n][i]), tp, sl)
                        for n in names]
            tracker.record(readings, price=x.candle(i).close, at_ms=int(x.open_time[i]) + M)
    assert checked > 50
    assert all(tracker.resolved_count(k) >= params.window for k in keys)  # the windows rolled


@pytest.mark.parametrize("n_symbols, events, bars_per_block", [(1, 40, 4096), (3, 5_000, 700), (50, 200_000, 81)])
def test_block_scores_equal_each_keys_own_queries(n_symbols: int, events: int, bars_per_block: int) -> None:
    # every (bar, symbol) of every block against ``prefix`` and ``approx_scores`` asked key by key;
    # a row without events is the unseen key's neutral 0.5. Bars 30 minutes apart, and keys
    # that rarely win, so scores with no win yet and with the 30-day recency floor are compared
    rng = np.random.default_rng(n_symbols)
    n_bars, step, t0 = 3_000, 30 * M, 1_600_000_000_000
    params = TrackerParams(window=50, recent_window=10, min_resolved_votes=5)
    parts = {}
    # (win rate, bars where a vote can win): key 1 has no win in its last 46 days, key 3 none in its first 31;
    # key 2 has no events (an unseen key)
    for k, (p_win, wins) in {0: (0.45, (0, n_bars)), 1: (1.0, (0, n_bars // 4)), 3: (0.05, (n_bars // 2, n_bars))}.items():
        order = np.sort(rng.integers(0, (n_bars + 1) * n_symbols, events // (k + 1))).astype(np.int64)
        bar = order // n_symbols
        won = (rng.random(len(order)) < p_win) & (bar >= wins[0]) & (bar <= wins[1])
        parts[k] = (bar, order % n_symbols, bar - rng.integers(1, 30, len(order)),
                    rng.choice([-1.0, 1.5, 0.3], len(order)), won, t0 + (bar + 1) * step)
    no_votes = np.zeros(0, dtype=np.int64)
    parts[2] = (no_votes, no_votes, no_votes, np.zeros(0), np.zeros(0, dtype=bool), no_votes)
    packed = pack_events(np.array([len(parts[k][0]) for k in range(4)]), [parts[k] for k in range(4)], n_symbols,
                         params)
    rows = [packed.row(k) for k in range(4)]
    scorer = BlockScores(packed, n_symbols, n_bars, bars_per_block, params, t0)
    assert scorer.n_blocks == -(-(n_bars + 1) // bars_per_block)  # bars 0 … n_bars
    never_won = floored = 0
    for b in range(scorer.n_blocks):
        g0, g1 = scorer.bars(b)
        bars = np.repeat(np.arange(g0, g1), n_symbols)
        symbols = np.tile(np.arange(n_symbols), g1 - g0)
        now = t0 + (bars + 1) * step
        m = scorer.prefix(b)
        score, neutral = scorer.scores(b, now)
        for row, ev in enumerate(rows):
            if not len(ev.order):
                assert not m[row].any() and neutral[row].all() and (score[row] == 0.5).all()
                continue
            want_m = ev.prefix(bars, symbols, n_symbols)
            assert m[row].tolist() == want_m.tolist()
            want_score, want_neutral = approx_scores(ev, want_m, now, params)
            assert neutral[row].tolist() == want_neutral.tolist()
            assert np.abs(score[row] - want_score).max() < 1e-12
            lw = ev.last_win_ms[want_m][~want_neutral]
            never_won += int((lw < 0).sum())
            floored += int(((lw >= 0) & (now[~want_neutral] - lw > 30 * 86_400_000)).sum())
    assert never_won > 0 and floored > 0


def test_block_scores_refuse_a_span_beyond_one_recency_reference() -> None:
    # the recency factors exp(±span · ln 0.95 / day) leave float64's range past ~37 years of 1m bars
    with pytest.raises(ValueError, match="span too long"):
        no_events = pack_events(np.zeros(1, dtype=np.int64), [(np.zeros(0, dtype=np.int64),) * 6], 1, TrackerParams())
        BlockScores(no_events, 1, 20_000_000, 4096, TrackerParams(), 0)


def test_packed_keys_equal_each_key_built_alone() -> None:
    # keys packed one after another (empty ones included) give each key's arrays bit for bit
    rng = np.random.default_rng(11)
    n_symbols, params = 4, TrackerParams(window=30, recent_window=7, min_resolved_votes=3)
    sizes = np.array([500, 0, 1, 2_000, 0, 37])
    rows = []
    for n in sizes:
        bar = rng.integers(0, 900, n)
        rows.append((bar, rng.integers(0, n_symbols, n), bar - rng.integers(1, 60, n), rng.choice([-1.0, 2.0, 0.37, -0.2], n),
                     rng.random(n) < 0.4, 1_600_000_000_000 + (bar + 1) * M))
    packed = pack_events(sizes, rows, n_symbols, params)
    assert packed.rows == len(sizes)
    for k, row in enumerate(rows):
        alone = build_key_events(*row, n_symbols, params)
        got = packed.row(k)
        for name in ("order", "r", "won", "partial", "last_win_ms"):
            assert getattr(got, name).tolist() == getattr(alone, name).tolist(), (k, name)
        assert len(got.partial) == sizes[k] + 1
    with pytest.raises(ValueError, match="sizes"):
        pack_events(sizes + 1, rows, n_symbols, params)
    with pytest.raises(ValueError, match="rows given"):
        pack_events(sizes, rows[:-1], n_symbols, params)


def test_tracker_order_is_lexsorts_permutation() -> None:
    # the single-key argsort against np.lexsort, ties (equal triples) and negative entry bars included
    from core.fast_tracker import _tracker_order

    rng = np.random.default_rng(5)
    for n_symbols, n in ((1, 0), (1, 1), (3, 2_000), (50, 20_000)):
        bar = rng.integers(0, 400, n)
        symbol = rng.integers(0, n_symbols, n)
        entry = bar - rng.integers(-5, 40, n)
        want = np.lexsort((entry, symbol, bar))
        idx, cell = _tracker_order(bar, symbol, entry, n_symbols)
        assert idx.tolist() == want.tolist()
        assert cell.tolist() == (bar * n_symbols + symbol).tolist()
