"""The tracker's fast paths give exactly what the plain computations give.

On real BTCUSDT bars (futures-2023) with toy sensors and a small window, so outcomes are
evicted from the window all the time: the lazy ``score_view`` equals ``scores()`` key for key
(memoised scores follow every resolution and every new market time), ``performance`` equals
pooling every outcome in Python, and votes built through the slot descriptors equal
``OpenVote(...)``.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import SensorReading
from core.history import load_candles
from core.sensor_tracker import (
    NEUTRAL_SCORE,
    PerformanceStats,
    SensorTracker,
    TrackerParams,
    _History,
    score_components,
)
from core.types import Candle, Timeframe
from core.vote_book import OpenVote, new_open_vote

NAMES = ("mom", "rev", "slow")


@pytest.fixture(scope="module")
def btc(data_dir: Path) -> list[Candle]:
    """The first 1500 closed 1m bars of futures-2023 BTCUSDT."""
    series = load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz")
    return [
        Candle("BTCUSDT", Timeframe.M1, int(series.open_time[i]), Decimal(str(series.open[i])),
               Decimal(str(series.high[i])), Decimal(str(series.low[i])), Decimal(str(series.close[i])),
               Decimal(str(series.volume[i])))
        for i in range(1500)
    ]


def plain_performance(tracker: SensorTracker, keys: list[str]) -> PerformanceStats:
    """``performance`` written plainly from the serialised outcomes."""
    history = tracker.to_dict()["history"]
    wins: list[float] = []
    losses: list[float] = []
    for key in dict.fromkeys(keys):
        for r, won in history.get(key, {"outcomes": []})["outcomes"]:
            (wins if won else losses).append(r)
    return PerformanceStats(len(wins) + len(losses), len(wins), len(losses),
                            math.fsum(wins) / len(wins) if wins else 0.0,
                            abs(math.fsum(losses)) / len(losses) if losses else 0.0)


def step(tracker: SensorTracker, bars: list[Candle], i: int) -> None:
    prev, bar = bars[i - 1], bars[i]
    move = 1.0 if bar.close > prev.close else -1.0 if bar.close < prev.close else 0.0
    tracker.record([SensorReading("mom", "BTCUSDT", Timeframe.M1, bar.open_time_ms, move, 0.0015, 0.001),
                    SensorReading("rev", "BTCUSDT", Timeframe.M1, bar.open_time_ms, -move * 0.5, 0.001, 0.002),
                    SensorReading("slow", "BTCUSDT", Timeframe.M1, bar.open_time_ms, 0.3, 0.004, 0.003)],
                   price=bar.close, at_ms=bar.open_time_ms + 60_000)
    tracker.on_candle(bars[i + 1])


def test_score_view_and_performance_match_the_plain_computations(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams(window=25, recent_window=7, horizon_bars=15, min_resolved_votes=5))
    keys = [f"{n}@1m" for n in NAMES]
    checked = 0
    for i in range(1, 1400):
        view = tracker.score_view()
        for key in keys:
            view.get(key)  # warm the memo on the previous market time: it must not leak into the next
        step(tracker, btc, i)
        if i % 7 == 0:
            view = tracker.score_view()
            assert dict(view) == tracker.scores()
            assert {k: view.get(k, -1.0) for k in keys} == {k: tracker.scores().get(k, -1.0) for k in keys}
            assert tracker.performance(keys + keys[:1]) == plain_performance(tracker, keys)
            assert tracker.performance(keys[1:]) == plain_performance(tracker, keys[1:])
            checked += 1
    assert checked > 100
    scores = tracker.scores()
    assert len({round(v, 9) for v in scores.values()}) == 3 and NEUTRAL_SCORE not in scores.values()
    assert tracker.score_view().get("unknown@1m", 0.123) == 0.123
    with pytest.raises(KeyError):
        tracker.score_view()["unknown@1m"]


def test_a_restored_tracker_pools_and_scores_identically(btc: list[Candle]) -> None:
    params = TrackerParams(window=20, recent_window=5, horizon_bars=10, min_resolved_votes=3)
    live = SensorTracker(params)
    for i in range(1, 700):
        step(live, btc, i)
    restored = SensorTracker.from_dict(json.loads(json.dumps(live.to_dict())), params)
    keys = [f"{n}@1m" for n in NAMES]
    for i in range(700, 1000):
        step(live, btc, i)
        step(restored, btc, i)
    assert restored.performance(keys) == live.performance(keys) == plain_performance(live, keys)
    assert dict(restored.score_view()) == live.scores()


def test_open_votes_built_through_the_slots_equal_the_constructor() -> None:
    args = ("mom@1m", "BTCUSDT", -1, 1_700_000_060_000, 30_001.9, 0.0015, 0.001, 1_700_000_960_000)
    fast, plain = new_open_vote(*args), OpenVote(*args)
    assert type(fast) is OpenVote and fast == plain and hash(fast) == hash(plain)
    assert (fast.tp_price, fast.sl_price) == (plain.tp_price, plain.sl_price)


_R = st.one_of(st.floats(min_value=-5.0, max_value=5.0, allow_nan=False), st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 0.1, -0.1]))


@settings(max_examples=300, deadline=None)
@given(rs=st.lists(_R, max_size=60), window=st.integers(1, 12), recent=st.integers(1, 12))
def test_the_kept_blend_equals_score_components_bit_for_bit(rs: list[float], window: int, recent: int) -> None:
    p = TrackerParams(window=window, recent_window=min(recent, window))
    hist = _History(window)
    for r in rs:
        hist.append(r, r > 0)  # won is R > 0 for every outcome (_History)
        kept = list(hist.rs)
        parts = score_components(kept, [x > 0 for x in kept], recent_window=p.recent_window,
                                 last_win_ms=None, now_ms=0)
        plain = (p.weight_expectancy * parts["expectancy"] + p.weight_profit_factor * parts["profit_factor"]
                 + p.weight_streak * parts["streak"] + p.weight_recent_win_rate * parts["recent_win_rate"])
        assert hist.blend(p) == plain  # exact: the same float, not merely close
    hist.split()  # a restore rebuilds the splits from the window: the same blend
    kept = list(hist.rs)
    if kept:
        parts = score_components(kept, [x > 0 for x in kept], recent_window=p.recent_window,
                                 last_win_ms=None, now_ms=0)
        assert hist.blend(p) == (p.weight_expectancy * parts["expectancy"] + p.weight_profit_factor * parts["profit_factor"]
                                 + p.weight_streak * parts["streak"] + p.weight_recent_win_rate * parts["recent_win_rate"])


def test_the_compact_window_holds_every_resolution_as_resolved(btc: list[Candle]) -> None:
    # The window keeps R values only (won = R > 0): what it gives back, for every key and in
    # order, is each Resolution's own (r, won) — wins, stops and expiries above and below entry.
    params = TrackerParams(window=30, recent_window=5, horizon_bars=4, min_resolved_votes=3)
    tracker = SensorTracker(params)
    resolved: dict[str, list[tuple[float, bool]]] = {}
    outcomes = set()
    for i in range(1, 900):
        prev, bar = btc[i - 1], btc[i]
        move = 1.0 if bar.close > prev.close else -1.0 if bar.close < prev.close else 0.0
        tracker.record([SensorReading(n, "BTCUSDT", Timeframe.M1, bar.open_time_ms, s * move or 0.4, tp, sl)
                        for n, s, tp, sl in (("mom", 1.0, 0.0015, 0.001), ("rev", -1.0, 0.0004, 0.0006),
                                             ("slow", 0.5, 0.01, 0.01))],
                       price=bar.close, at_ms=bar.open_time_ms + 60_000)
        for res in tracker.on_candle(btc[i + 1]):
            resolved.setdefault(res.key, []).append((res.r, res.won))
            outcomes.add((res.outcome, res.won))
    assert len(outcomes) == 4  # win, loss, expired won and expired lost all happened
    history = tracker.to_dict()["history"]
    assert {k: [tuple(o) for o in h["outcomes"]] for k, h in history.items()} == {
        k: v[-params.window:] for k, v in resolved.items()}


def test_a_restore_refuses_an_outcome_whose_won_flag_contradicts_its_r() -> None:
    params = TrackerParams()
    state = SensorTracker(params).to_dict()
    state["history"] = {"mom@1m": {"outcomes": [[-0.2, True]], "last_win_ms": None}}
    with pytest.raises(ValueError, match="mom@1m"):
        SensorTracker.from_dict(state, params)


def test_to_json_is_the_canonical_dump_of_to_dict(btc: list[Candle]) -> None:
    # The engine persists to_json() in place of dumps_plain(encode(to_dict())): the same bytes,
    # with several symbols (one whose votes all resolved: an empty book), keys without outcomes
    # yet, more dedupe marks than one piece holds, and a fresh tracker.
    from core import sensor_tracker
    from state import codec

    def canonical(t: SensorTracker) -> bytes:
        return codec.dumps_plain(codec.encode(t.to_dict()))

    params = TrackerParams(window=25, recent_window=7, horizon_bars=15, min_resolved_votes=5)
    tracker = SensorTracker(params)
    assert tracker.to_json() == canonical(tracker)
    for i in range(1, 400):
        step(tracker, btc, i)
        bar = btc[i]
        for name, sym in (("e", "ETHUSDT"), ("s", "SOLUSDT")):  # only the symbol's own candles judge these
            tracker.record([SensorReading(f"{name}{i % 50}", sym, Timeframe.M5, bar.open_time_ms, 0.5, 0.02, 0.01)],
                           price=bar.close, at_ms=bar.open_time_ms + 60_000)
    tracker.on_candle(Candle("SOLUSDT", Timeframe.M1, btc[400].open_time_ms, Decimal(1), Decimal(10**6),
                             Decimal("0.001"), Decimal(1), Decimal(1)))  # every SOLUSDT vote resolves
    data = tracker.to_dict()
    assert len(data["open"]) > 100 and len(data["last_recorded"]) > 100
    assert any(not h["outcomes"] for h in data["history"].values())
    assert tracker.to_json() == canonical(tracker)
    small = sensor_tracker._JSON_ROWS
    try:
        sensor_tracker._JSON_ROWS = 7  # several pieces of dedupe marks
        assert tracker.to_json() == canonical(tracker)
    finally:
        sensor_tracker._JSON_ROWS = small
    restored = SensorTracker.from_dict(orjson.loads(tracker.to_json()), params)
    assert restored.to_json() == tracker.to_json()
