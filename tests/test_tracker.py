"""SensorTracker: votes judged on real BTCUSDT 1m candles (hand-checked), the score blend,
bounded memory, and a restart that restores identical weights."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import SensorReading
from core.history import load_candles
from core.sensor_tracker import (
    Outcome,
    SensorTracker,
    TrackerParams,
    score_components,
    sensor_key,
)
from core.types import Candle, Timeframe


@pytest.fixture(scope="module")
def btc(data_dir: Path) -> list[Candle]:
    """The first 3000 closed 1m bars of futures-2023 BTCUSDT (starts 2023-07-18 11:13 UTC)."""
    series = load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz")
    return [
        Candle("BTCUSDT", Timeframe.M1, int(series.open_time[i]), Decimal(str(series.open[i])),
               Decimal(str(series.high[i])), Decimal(str(series.low[i])), Decimal(str(series.close[i])),
               Decimal(str(series.volume[i])))
        for i in range(3000)
    ]


def reading(name: str, bar: Candle, signal: float, tp: float, sl: float,
            tf: Timeframe = Timeframe.M1) -> SensorReading:
    return SensorReading(name, "BTCUSDT", tf, bar.open_time_ms, signal, tp, sl)


def test_real_candles_hand_checked_sample(btc: list[Candle]) -> None:
    """Expected outcomes worked out by reading futures-2023/BTCUSDT-1m.csv.gz by hand.

    Bar k below is the k-th row (0 = open 1689678780000 = 2023-07-18 11:13 UTC).
    Bar 0 closes at 30001.9; votes made on it are judged from bar 1 (open 1689678840000).
      bar 1..7 highs: 30002.0 30001.4 29994.5 29992.1 30002.0 30020.4 30019.1; bar 8 high 30055.9
      lows up to bar 39 never go below 29940.6; bar 40 (open 1689681180000) low 29839.8.
    A  long  tp 0.1 %  sl 0.1 %: TP 30031.90, SL 29971.90. Lows stay ≥ 29988.0 until bar 8,
       whose high 30055.9 reaches TP (its low 30018.4 is far from SL) → WIN at bar 8's close.
    B  short tp 0.1 %  sl 0.1 %: SL above at 30031.90 — bar 8's high 30055.9 → LOSS at bar 8.
    C  short tp 0.2 %  sl 0.05 %: SL 30016.90 — bar 6's high 30020.4 → LOSS at bar 6.
    D  long on bar 4 (close 29992.0), judged from bar 5: tp 0.02 % → 29997.998, sl 0.01 % →
       29989.001. Bar 5 has high 30002.0 AND low 29988.0: both in one bar → pessimistic LOSS.
    E  long  tp 1 % sl 1 %, horizon 5 bars (its own tracker): nothing touched on bars 1..5 →
       EXPIRED at bar 5's close 29998.0: R = (29998.0 − 30001.9) / 30001.9 / 0.01 = −0.012999…,
       so it counts as a loss. (A–D and F use a 60-bar horizon.)
    F  short tp 0.5 % sl 0.5 % on the 5m timeframe (horizon 60 × 5m): TP 29851.89; lows stay ≥
       29940.6 through bar 39, bar 40's low 29839.8 reaches it → WIN at bar 40's close.
    """
    tracker = SensorTracker(TrackerParams(horizon_bars=60, min_resolved_votes=1))
    short_horizon = SensorTracker(TrackerParams(horizon_bars=5, min_resolved_votes=1))
    b0, b4 = btc[0], btc[4]
    at0 = b0.open_time_ms + 60_000
    assert (b0.close, b4.close) == (Decimal("30001.9"), Decimal("29992.0"))
    tracker.record([reading("A", b0, 1.0, 0.001, 0.001), reading("B", b0, -1.0, 0.001, 0.001),
                    reading("C", b0, -0.5, 0.002, 0.0005),
                    SensorReading("F", "BTCUSDT", Timeframe.M5, b0.open_time_ms - 240_000, -1.0, 0.005, 0.005)],
                   price=b0.close, at_ms=at0)
    short_horizon.record([reading("E", b0, 0.7, 0.01, 0.01)], price=b0.close, at_ms=at0)
    results = {}
    for k, bar in enumerate(btc[1:60], start=1):
        if k == 5:  # D is made on bar 4's close, just before bar 5 is judged
            tracker.record([reading("D", b4, 1.0, 0.0002, 0.0001)], price=b4.close, at_ms=bar.open_time_ms)
        for res in tracker.on_candle(bar) + short_horizon.on_candle(bar):
            results[res.key.split("@")[0]] = (res.outcome, k, res.r, res.resolved_ms)
    close = lambda k: btc[k].open_time_ms + 60_000  # noqa: E731
    assert results["A"][:2] == (Outcome.WIN, 8) and results["A"][2] == pytest.approx(1.0)
    assert results["B"][:3] == (Outcome.LOSS, 8, -1.0)
    assert results["C"][:3] == (Outcome.LOSS, 6, -1.0)
    assert results["D"][:3] == (Outcome.LOSS, 5, -1.0)
    assert results["E"][:2] == (Outcome.EXPIRED, 5)
    assert results["E"][2] == pytest.approx((29998.0 - 30001.9) / 30001.9 / 0.01)
    assert results["F"][:2] == (Outcome.WIN, 40)
    assert results["A"][3] == close(8) and results["F"][3] == close(40)
    assert tracker.open_votes == 0 and short_horizon.open_votes == 0
    perf = tracker.performance(["A@1m", "B@1m", "C@1m", "F@5m"])
    assert (perf.resolved, perf.wins, perf.losses) == (4, 2, 2)
    assert (perf.avg_win_r, perf.avg_loss_r, perf.payoff) == (1.0, 1.0, 1.0)
    assert short_horizon.performance(["E@1m"]).losses == 1  # expired below entry: not a win


def test_candles_before_a_vote_are_not_evidence(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams(min_resolved_votes=1))
    tracker.record([reading("A", btc[8], 1.0, 0.001, 0.001)], price=btc[8].close, at_ms=btc[9].open_time_ms)
    assert tracker.on_candle(btc[8]) == []  # the vote's own bar, replayed: ignored
    assert tracker.open_votes == 1


def test_repeated_and_missing_readings_are_not_votes(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams())
    r = reading("A", btc[0], 1.0, 0.001, 0.001)
    h1 = SensorReading("H", "BTCUSDT", Timeframe.H1, btc[0].open_time_ms - 3_600_000, 1.0, 0.1, 0.05)
    assert tracker.record([r, h1, reading("N", btc[0], float("nan"), 0.01, 0.01),
                           reading("Z", btc[0], 0.0, 0.01, 0.01)], price=btc[0].close, at_ms=1) == 2
    # The same readings again (late or repeated HTF reading on the next bar) open nothing.
    assert tracker.record([r, h1], price=btc[1].close, at_ms=2) == 0


def test_score_blend_components_by_hand() -> None:
    # W(+1.5R) L(−1R) W W, last win just now.
    rs, wins = [1.5, -1.0, 1.5, 1.5], [True, False, True, True]
    parts = score_components(rs, wins, recent_window=20, last_win_ms=1000, now_ms=1000)
    assert parts == {
        "expectancy": pytest.approx(0.5 + 0.5 * 0.875),      # mean R = 3.5 / 4
        "profit_factor": 1.0,                                 # PF = 4.5 → capped
        "streak": pytest.approx(0.9),                         # +2 → 0.5 + 2/5
        "recent_win_rate": 0.75,
        "recency": 1.0,
    }
    lose = score_components([-1.0, -1.0, 0.5, -1.0, -1.0], [False, False, True, False, False],
                            recent_window=3, last_win_ms=0, now_ms=10 * 86_400_000)
    assert lose["expectancy"] == pytest.approx(0.5 + 0.5 * (-3.5 / 5))
    assert lose["profit_factor"] == pytest.approx(0.5 / 4 * 0.5)
    assert lose["streak"] == 0.0  # −2: 0.5 − min(2/3, 0.5)
    assert lose["recent_win_rate"] == pytest.approx(1 / 3)
    assert lose["recency"] == pytest.approx(0.95 ** 10)


def test_score_is_neutral_until_min_resolved_then_the_weighted_blend(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams(min_resolved_votes=3, horizon_bars=60))
    # Votes A (win), B (loss), C (loss) under one key, each on its own bar so none is a repeat.
    key = sensor_key("S", Timeframe.M1)
    tracker.record([reading("S", btc[0], 1.0, 0.001, 0.001)], price=btc[0].close, at_ms=btc[1].open_time_ms)
    for bar in btc[1:9]:
        tracker.on_candle(bar)
    assert tracker.resolved_count(key) == 1 and tracker.score(key) == 0.5
    tracker.record([reading("S", btc[1], -1.0, 0.001, 0.001)], price=btc[1].close, at_ms=btc[9].open_time_ms)
    tracker.record([reading("S", btc[2], -1.0, 0.002, 0.0005)], price=btc[2].close, at_ms=btc[9].open_time_ms)
    for bar in btc[9:60]:
        tracker.on_candle(bar)
    assert tracker.resolved_count(key) == 3
    hist = tracker.to_dict()["history"][key]
    rs = [r for r, _ in hist["outcomes"]]
    wins = [w for _, w in hist["outcomes"]]
    parts = score_components(rs, wins, recent_window=20, last_win_ms=hist["last_win_ms"], now_ms=tracker.now_ms)
    expected = (0.40 * parts["expectancy"] + 0.25 * parts["profit_factor"] + 0.20 * parts["streak"]
                + 0.10 * parts["recent_win_rate"] + 0.05 * parts["recency"])
    assert tracker.score(key) == pytest.approx(expected)
    assert tracker.score("never-seen@1m") == 0.5


def test_memory_is_bounded(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams(window=10, recent_window=5, max_open_votes=100, horizon_bars=2))
    for i in range(300):
        r = reading("S", btc[i], 1.0 if i % 2 else -1.0, 0.0005, 0.0005)
        tracker.record([r], price=btc[i].close, at_ms=btc[i + 1].open_time_ms)
        tracker.on_candle(btc[i + 1])
    assert tracker.resolved_count("S@1m") == 10
    # Candles stop for a symbol: open votes are capped, the oldest dropped and counted.
    for i in range(300, 450):
        tracker.record([reading(f"X{i}", btc[i], 1.0, 0.01, 0.01)], price=btc[i].close, at_ms=btc[i].open_time_ms)
    assert tracker.open_votes == 100
    assert tracker.dropped_open_votes >= 50


def run(tracker: SensorTracker, bars: list[Candle], start: int, stop: int) -> None:
    """Two toy sensors on real bars: momentum (sign of the last return) and its opposite."""
    for i in range(start, stop):
        prev, bar = bars[i - 1], bars[i]
        move = 1.0 if bar.close > prev.close else -1.0 if bar.close < prev.close else 0.0
        tracker.record([reading("mom", bar, move, 0.002, 0.001), reading("rev", bar, -move, 0.001, 0.001),
                        reading("mom", bar, move, 0.004, 0.002, Timeframe.M5)],
                       price=bar.close, at_ms=bar.open_time_ms + 60_000)
        tracker.on_candle(bars[i + 1])


def test_restart_restores_identical_weights(btc: list[Candle]) -> None:
    params = TrackerParams(window=50, recent_window=10, horizon_bars=30)
    live = SensorTracker(params)
    run(live, btc, 1, 1500)
    saved = json.loads(json.dumps(live.to_dict()))  # through real JSON, as a snapshot would
    restored = SensorTracker.from_dict(saved, params)
    assert restored.scores() == live.scores()
    assert restored.to_dict() == live.to_dict()
    # Both keep learning from the same bars and stay identical (open votes were restored too).
    run(live, btc, 1500, 2500)
    run(restored, btc, 1500, 2500)
    assert restored.scores() == live.scores()
    assert set(live.scores()) == {"mom@1m", "rev@1m", "mom@5m"}
    assert len({round(s, 9) for s in live.scores().values()}) == 3  # the sensors really differ


def test_from_dict_refuses_unknown_versions() -> None:
    with pytest.raises(ValueError, match="version"):
        SensorTracker.from_dict({"version": 99}, TrackerParams())


def test_a_candle_only_judges_its_own_symbols_votes(btc: list[Candle]) -> None:
    tracker = SensorTracker(TrackerParams())
    tracker.record([reading("A", btc[0], 1.0, 0.001, 0.001)], price=btc[0].close, at_ms=btc[1].open_time_ms)
    eth = Candle("ETHUSDT", Timeframe.M1, btc[8].open_time_ms, Decimal("1"), Decimal("99999"),
                 Decimal("0.5"), Decimal("1"), Decimal("1"))
    assert tracker.on_candle(eth) == []
    assert tracker.open_votes == 1
