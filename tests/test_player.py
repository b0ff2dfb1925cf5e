"""The consensus player: every rule and every skip reason, table-driven, plus the adapter."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from decimal import Decimal

import pytest

from core.clock import FakeClock
from core.events import Decision, SensorReading, Skip
from core.metrics import BAD_READINGS, SKIPS
from core.player import (
    Bar,
    Player,
    PlayerParams,
    SymbolBook,
    decide,
    htf_trend,
    screen_readings,
    winning_keys,
)
from core.sensor_tracker import sensor_key
from core.types import Candle, Side, Timeframe

T0 = 1_689_678_780_000  # 2023-07-18 11:13 UTC, a 1m bar open (divisible by 60 000)
BAR = Bar("BTCUSDT", Timeframe.M1, T0, Decimal("30001.9"))
P = PlayerParams(min_score=0.5, min_voters=3, min_margin=0.10, min_confidence=0.05, cooldown_bars=5,
                 htf_filter=True)


def rd(name: str, signal: float | None, *, tf: Timeframe = Timeframe.M1, open_ms: int | None = None,
       tp: float = 0.015, sl: float = 0.010, context: bool = False, symbol: str = "BTCUSDT") -> SensorReading:
    """A reading on ``BAR`` (or the latest closed ``tf`` bar at BAR's close)."""
    if open_ms is None:
        open_ms = BAR.close_ms - tf.ms - (BAR.close_ms % tf.ms)
    return SensorReading(name, symbol, tf, open_ms, signal, tp, sl, context)


def ctx(signal: float | None, name: str = "ctx") -> SensorReading:
    return rd(name, signal, tf=Timeframe.H1, context=True)


UP = ctx(1.0)
DOWN = ctx(-1.0)


def scores(**kw: float) -> dict[str, float]:
    return {sensor_key(k, Timeframe.M1): v for k, v in kw.items()}


def reason(verdict: Decision | Skip) -> str:
    return verdict.reason if isinstance(verdict, Skip) else f"decision:{verdict.side.value}"


# Each row: id, readings, scores, params, book, expected verdict.
CASES: list[tuple[str, Sequence[SensorReading], dict[str, float], PlayerParams, SymbolBook, str]] = [
    ("three longs decide long",
     [rd("a", 1), rd("b", 0.5), rd("c", 0.8), UP], {}, P, SymbolBook(), "decision:BUY"),
    ("three shorts decide short",
     [rd("a", -1), rd("b", -0.5), rd("c", -0.8), DOWN], {}, P, SymbolBook(), "decision:SELL"),
    ("open bracket blocks",
     [rd("a", 1), rd("b", 1), rd("c", 1), UP], {}, P, SymbolBook(bracket_active=True), "bracket_open"),
    ("cooldown: 5 bars after the last decision still blocked",
     [rd("a", 1), rd("b", 1), rd("c", 1), UP], {}, P, SymbolBook(last_decision_index=BAR.index - 5), "cooldown"),
    ("cooldown: 6 bars after the last decision passes",
     [rd("a", 1), rd("b", 1), rd("c", 1), UP], {}, P, SymbolBook(last_decision_index=BAR.index - 6), "decision:BUY"),
    ("two present voters are not enough",
     [rd("a", 1), rd("b", 1), rd("c", None), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("NaN is missing, never neutral",
     [rd("a", 1), rd("b", 1), rd("c", math.nan), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("context readings do not count as voters",
     [rd("a", 1), rd("b", 1), UP, ctx(1.0, "ctx2")], {}, P, SymbolBook(), "insufficient_data"),
    ("quality gate removes every voter",
     [rd("a", 1), rd("b", 1), rd("c", 1), UP], scores(a=0.4, b=0.3, c=0.49), P, SymbolBook(),
     "no_qualified_voters"),
    ("gated sensors do not vote: the lone good short wins",
     [rd("a", 1), rd("b", 1), rd("c", -1), DOWN], scores(a=0.4, b=0.4, c=0.7), P, SymbolBook(),
     "decision:SELL"),
    ("all qualified voters say zero",
     [rd("a", 0.0), rd("b", 0.0), rd("c", 0.0), UP], {}, P, SymbolBook(), "no_signal"),
    ("equal weights tie",
     [rd("a", 1), rd("b", -1), rd("c", 0.0), UP], {}, P, SymbolBook(), "tie"),
    ("margin below min_margin",  # ΣL = 0.5(1+0.1) = 0.55, ΣS = 0.5 → margin 0.0476
     [rd("a", 1), rd("b", 0.1), rd("c", -1), UP], {}, P, SymbolBook(), "low_margin"),
    ("confidence below min_confidence",  # margin 1 × best score 0.5 = 0.5 < 0.6
     [rd("a", 1), rd("b", 1), rd("c", 1), UP], {}, PlayerParams(min_confidence=0.6), SymbolBook(),
     "low_confidence"),
    ("HTF down blocks a long",
     [rd("a", 1), rd("b", 1), rd("c", 1), DOWN], {}, P, SymbolBook(), "against_htf"),
    ("HTF majority down (2 of 3) blocks a long",
     [rd("a", 1), rd("b", 1), rd("c", 1), ctx(1, "x"), ctx(-1, "y"), ctx(-0.2, "z")], {}, P, SymbolBook(),
     "against_htf"),
    ("HTF flat (tie of context signs) lets a long through",
     [rd("a", 1), rd("b", 1), rd("c", 1), ctx(1, "x"), ctx(-1, "y")], {}, P, SymbolBook(), "decision:BUY"),
    ("HTF unknown (context missing) is skipped, not treated as flat",
     [rd("a", 1), rd("b", 1), rd("c", 1), ctx(None)], {}, P, SymbolBook(), "htf_missing"),
    ("no context reading at all with the filter on",
     [rd("a", 1), rd("b", 1), rd("c", 1)], {}, P, SymbolBook(), "htf_missing"),
    ("filter off: no context needed",
     [rd("a", 1), rd("b", 1), rd("c", 1)], {}, PlayerParams(htf_filter=False), SymbolBook(), "decision:BUY"),
    ("future reading (look-ahead) is ignored → too few voters",
     [rd("a", 1), rd("b", 1), rd("c", 1, open_ms=T0 + 60_000), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("stale reading is ignored → too few voters",
     [rd("a", 1), rd("b", 1), rd("c", 1, open_ms=T0 - 60_000), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("a duplicated sensor counts once",
     [rd("a", 1), rd("a", 1), rd("b", 1), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("another symbol's reading is ignored",
     [rd("a", 1), rd("b", 1), rd("c", 1, symbol="ETHUSDT"), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("signal outside [-1, 1] is ignored",
     [rd("a", 1), rd("b", 1), rd("c", 3.0), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("a voter without usable TP/SL distances is ignored",
     [rd("a", 1), rd("b", 1), rd("c", 1, sl=math.inf), UP], {}, P, SymbolBook(), "insufficient_data"),
    ("a 5m reading whose bar closed at this bar's close votes with the 1m ones",
     [rd("a", 1), rd("b", 1), rd("c", 1, tf=Timeframe.M5), UP], {}, P, SymbolBook(), "decision:BUY"),
]


@pytest.mark.parametrize(("readings", "sc", "params", "book", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(readings: Sequence[SensorReading], sc: dict[str, float], params: PlayerParams,
               book: SymbolBook, expected: str) -> None:
    assert reason(decide(BAR, readings, sc, params, book)) == expected


def test_weighted_sums_margin_confidence_and_votes_are_exact() -> None:
    # Arrange: long a (score .8, signal 1) + b (.6, .5); short c (.7, -.5); context up.
    readings = [rd("a", 1.0, tp=0.02, sl=0.01), rd("b", 0.5, tp=0.01, sl=0.005), rd("c", -0.5), UP]
    sc = scores(a=0.8, b=0.6, c=0.7)
    # Act
    verdict = decide(BAR, readings, sc, P)
    # Assert: ΣL = 0.8 + 0.3 = 1.1, ΣS = 0.35, margin = 0.75/1.45, confidence = margin × 0.8
    assert isinstance(verdict, Decision)
    assert verdict.side is Side.BUY
    assert verdict.confidence == pytest.approx((1.1 - 0.35) / 1.45 * 0.8)
    # TP/SL: weight-averaged over the winning voters only (c is excluded)
    assert verdict.tp_fraction == pytest.approx((0.8 * 0.02 + 0.3 * 0.01) / 1.1)
    assert verdict.sl_fraction == pytest.approx((0.8 * 0.01 + 0.3 * 0.005) / 1.1)
    assert [(v.sensor, v.weight) for v in verdict.votes] == [
        ("a", pytest.approx(0.8)), ("c", pytest.approx(0.35)), ("b", pytest.approx(0.3))]
    assert verdict.reference_price == Decimal("30001.9")
    assert winning_keys(verdict) == ["a@1m", "b@1m"]


@pytest.mark.parametrize(("tp", "sl", "want_tp", "want_sl"), [
    (0.30, 0.20, 0.12, 0.08),   # above the bounds → clamped down
    (0.001, 0.001, 0.004, 0.003),  # below → clamped up
    (0.05, 0.02, 0.05, 0.02),   # inside → unchanged
])
def test_tp_sl_clamped_to_configured_bounds(tp: float, sl: float, want_tp: float, want_sl: float) -> None:
    readings = [rd("a", 1, tp=tp, sl=sl), rd("b", 1, tp=tp, sl=sl), rd("c", 1, tp=tp, sl=sl), UP]
    verdict = decide(BAR, readings, {}, P)
    assert isinstance(verdict, Decision)
    assert verdict.tp_fraction == pytest.approx(want_tp)
    assert verdict.sl_fraction == pytest.approx(want_sl)


def test_htf_trend_ignores_voters_and_missing() -> None:
    assert htf_trend([rd("a", 1), ctx(None)]) is None
    assert htf_trend([ctx(0.0)]) == 0
    assert htf_trend([ctx(0.3, "x"), ctx(0.1, "y"), ctx(-1, "z")]) == 1


def test_screen_reports_every_rejection_reason() -> None:
    screened = screen_readings(BAR, [
        rd("a", 1), rd("a", 1), rd("b", 2.0), rd("c", 1, symbol="ETHUSDT"),
        rd("d", 1, open_ms=T0 + 60_000), rd("e", 1, open_ms=T0 - 60_000), rd("f", None),
    ])
    assert [r.sensor for r in screened.usable] == ["a", "f"]
    assert sorted(reason for _, reason in screened.rejected) == sorted([
        "duplicate_reading", "signal_out_of_range", "wrong_symbol", "future_reading", "stale_reading"])


# ------------------------------------------------------------------------------ adapter


def candle(open_ms: int, *, symbol: str = "BTCUSDT", close: str = "30001.9",
           tf: Timeframe = Timeframe.M1, closed: bool = True) -> Candle:
    c = Decimal(close)
    return Candle(symbol, tf, open_ms, c, c, c, c, Decimal("1"), closed)


def bar_readings(open_ms: int, signal: float = 1.0, symbol: str = "BTCUSDT") -> list[SensorReading]:
    out = [SensorReading(n, symbol, Timeframe.M1, open_ms, signal, 0.015, 0.01) for n in "abc"]
    h1_open = (open_ms + 60_000) - (open_ms + 60_000) % 3_600_000 - 3_600_000
    out.append(SensorReading("ctx", symbol, Timeframe.H1, h1_open, 1.0, 0.1, 0.05, True))
    return out


def make_player(**kw: object) -> Player:
    params = PlayerParams(**{"cooldown_bars": 2, **kw})  # type: ignore[arg-type]
    return Player(params, ["BTCUSDT", "ETHUSDT"], clock=FakeClock(T0 + 61_000))


def run_bar(player: Player, open_ms: int, signal: float = 1.0, symbol: str = "BTCUSDT") -> Decision | Skip | None:
    if not player.open_bar(candle(open_ms, symbol=symbol)):
        return None
    player.add_readings(bar_readings(open_ms, signal, symbol))
    return player.close_bar(symbol)


def test_exactly_one_verdict_per_symbol_and_bar() -> None:
    player = make_player()
    first = run_bar(player, T0)
    assert isinstance(first, Decision)
    # The same bar again (re-delivered candle) → no second verdict, counted as bad input.
    assert player.open_bar(candle(T0)) is False
    assert player.close_bar("BTCUSDT") is None
    # Readings for the decided bar arriving late are ignored with a reason.
    assert player.add_readings(bar_readings(T0)) == 0
    assert player.bad_input_counts["duplicate_bar"] == 1
    assert player.bad_input_counts["late_reading"] == 4


def test_out_of_order_and_bad_bars_are_counted_not_decided() -> None:
    player = make_player()
    before = BAD_READINGS.labels(reason="out_of_order_bar")._value.get()
    assert run_bar(player, T0 + 60_000) is not None
    assert player.open_bar(candle(T0)) is False  # older than the last bar
    assert player.open_bar(candle(T0 + 120_000, symbol="DOGEUSDT")) is False
    assert player.open_bar(candle(T0 + 120_000, tf=Timeframe.M5)) is False
    assert player.open_bar(candle(T0 + 120_000, closed=False)) is False
    assert dict(player.bad_input_counts) == {
        "out_of_order_bar": 1, "unknown_symbol": 1, "wrong_timeframe": 1, "open_candle": 1}
    assert BAD_READINGS.labels(reason="out_of_order_bar")._value.get() == before + 1


def test_readings_arriving_twice_count_once() -> None:
    player = make_player(min_voters=3)
    player.open_bar(candle(T0))
    readings = bar_readings(T0)
    assert player.add_readings(readings[:2]) == 2
    assert player.add_readings(readings[:2]) == 0  # the same two again
    assert player.collected("BTCUSDT") == 2
    verdict = player.close_bar("BTCUSDT")
    assert isinstance(verdict, Skip) and verdict.reason == "insufficient_data"
    assert player.bad_input_counts["duplicate_reading"] == 2


def test_unknown_symbol_and_no_open_bar_readings() -> None:
    player = make_player()
    assert player.add_readings(bar_readings(T0, symbol="DOGEUSDT")) == 0
    assert player.add_readings(bar_readings(T0)) == 0  # nothing collecting yet
    assert player.bad_input_counts == {"unknown_symbol": 4, "no_open_bar": 4}


def test_cooldown_is_per_symbol_in_that_symbols_bars() -> None:
    player = make_player(cooldown_bars=2)
    assert isinstance(run_bar(player, T0), Decision)
    # ETH is not cooled down by BTC's decision (Casino-V3 counted cooldown across symbols).
    assert isinstance(run_bar(player, T0, symbol="ETHUSDT"), Decision)
    assert reason(run_bar(player, T0 + 60_000)) == "cooldown"  # type: ignore[arg-type]
    assert reason(run_bar(player, T0 + 120_000)) == "cooldown"  # type: ignore[arg-type]
    assert isinstance(run_bar(player, T0 + 180_000), Decision)
    assert player.skip_counts == {"cooldown": 2}


def test_bracket_flag_debounces_and_cooldown_survives_restart() -> None:
    player = make_player(cooldown_bars=3)
    assert isinstance(run_bar(player, T0), Decision)
    player.set_bracket_active("BTCUSDT", True)
    skips_before = SKIPS.labels(reason="bracket_open")._value.get()
    assert reason(run_bar(player, T0 + 600_000)) == "bracket_open"  # type: ignore[arg-type]
    assert SKIPS.labels(reason="bracket_open")._value.get() == skips_before + 1
    player.set_bracket_active("BTCUSDT", False)
    saved = player.to_dict()
    restored = make_player(cooldown_bars=3)
    restored.restore(saved)
    assert restored.open_bar(candle(T0 + 600_000)) is False  # already seen before the restart
    assert reason(run_bar(restored, T0 + 660_000)) == "decision:BUY"  # type: ignore[arg-type]


def test_a_new_bar_supersedes_a_stuck_one() -> None:
    player = make_player()
    player.open_bar(candle(T0))
    player.add_readings(bar_readings(T0))  # never closed (say the engine lost track of it)
    assert isinstance(run_bar(player, T0 + 60_000), Decision)  # no cooldown: T0 was never decided
    assert player.skip_counts == {"superseded": 1}
    assert player.decision_counts == {"BUY": 1}


def test_nan_score_never_qualifies() -> None:
    readings = [rd("a", 1), rd("b", 1), rd("c", 1), UP]
    verdict = decide(BAR, readings, scores(a=math.nan, b=math.nan, c=math.nan), P)
    assert isinstance(verdict, Skip) and verdict.reason == "no_qualified_voters"


async def test_collect_and_decide_waits_for_expected_readings() -> None:
    clock = FakeClock(T0 + 61_000)
    player = Player(PlayerParams(cooldown_bars=0), ["BTCUSDT"], clock=clock)
    inbox: asyncio.Queue[Sequence[SensorReading]] = asyncio.Queue()
    readings = bar_readings(T0)
    inbox.put_nowait(readings[:2])
    inbox.put_nowait(readings[2:])
    verdict = await player.collect_and_decide(candle(T0), inbox, expected=4, timeout_s=5)
    assert isinstance(verdict, Decision)
    assert inbox.empty()


async def test_collect_and_decide_times_out_with_missing_sensors() -> None:
    clock = FakeClock(T0 + 61_000)
    player = Player(PlayerParams(cooldown_bars=0), ["BTCUSDT"], clock=clock)
    inbox: asyncio.Queue[Sequence[SensorReading]] = asyncio.Queue()
    inbox.put_nowait(bar_readings(T0)[:2])  # two of four arrive; the rest never do
    task = asyncio.create_task(player.collect_and_decide(candle(T0), inbox, expected=4, timeout_s=2))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    await clock.advance(2.0)
    verdict = await asyncio.wait_for(task, 1)
    assert isinstance(verdict, Skip) and verdict.reason == "insufficient_data"
    # A batch arriving after the verdict is late and ignored.
    assert player.add_readings(bar_readings(T0)[2:]) == 0
    assert player.bad_input_counts["late_reading"] == 2


def test_nan_signal_is_counted_and_stays_missing() -> None:
    player = make_player()
    player.open_bar(candle(T0))
    readings = bar_readings(T0)
    readings[2] = SensorReading("c", "BTCUSDT", Timeframe.M1, T0, math.nan, 0.015, 0.01)
    assert player.add_readings(readings) == 4  # accepted as the sensor's (missing) reading
    verdict = player.close_bar("BTCUSDT")
    assert isinstance(verdict, Skip) and verdict.reason == "insufficient_data"
    assert player.report() == {"decisions": {}, "skips": {"insufficient_data": 1},
                               "bad_input": {"nan_signal": 1}}


def test_params_come_from_the_default_config_as_fractions() -> None:
    from config.loader import load_settings
    from core.risk import RiskParams
    from core.sensor_tracker import TrackerParams
    from core.sizing import SizingParams

    s = load_settings(env={})
    player = PlayerParams.from_settings(s.player)
    assert (player.min_score, player.min_margin, player.cooldown_bars) == (0.5, 0.10, 5)
    tracker = TrackerParams.from_settings(s.tracker, s.player)
    assert (tracker.min_resolved_votes, tracker.max_open_votes) == (10, 50_000)
    assert math.isclose(tracker.weight_expectancy + tracker.weight_profit_factor + tracker.weight_streak
                        + tracker.weight_recent_win_rate + tracker.weight_recency, 1.0)
    sizing = SizingParams.from_settings(s.sizing)
    assert (sizing.min_fraction, sizing.max_fraction, sizing.fallback_fraction) == (
        Decimal("0.01"), Decimal("0.1"), Decimal("0.01"))
    risk = RiskParams.from_settings(s.risk)
    assert (risk.daily_loss_limit_fraction, risk.max_gross_leverage, risk.loss_cooldown_ms) == (
        Decimal("0.05"), Decimal("3.0"), 900_000)
