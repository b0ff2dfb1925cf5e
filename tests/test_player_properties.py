"""Property tests for the player: never against the HTF context, never two verdicts per bar,
bad input never crashes nor decides."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.events import Decision, SensorReading, Skip
from core.player import Bar, Player, PlayerParams, decide, htf_trend, screen_readings
from core.sensor_tracker import sensor_key
from core.types import Candle, Timeframe

T0 = 1_689_678_780_000
BAR = Bar("BTCUSDT", Timeframe.M1, T0, Decimal("30000"))
NAMES = [f"s{i}" for i in range(8)]
TFS = [Timeframe.M1, Timeframe.M5, Timeframe.H1]

# Mostly valid signals so decisions happen; missing, NaN and out-of-range ones sprinkled in.
signals = st.one_of(st.floats(-1, 1), st.sampled_from([-1.0, 0.0, 1.0]), st.floats(-1, 1),
                    st.sampled_from([None, math.nan, 3.0, -2.5]))


@st.composite
def reading(draw: st.DrawFn, open_ms: int = T0) -> SensorReading:
    tf = draw(st.sampled_from(TFS))
    close = open_ms + 60_000
    shift = draw(st.sampled_from([0] * 8 + [-1, 1]))  # mostly on time, sometimes stale or future
    r_open = close - close % tf.ms - tf.ms + shift * tf.ms
    return SensorReading(
        sensor=draw(st.sampled_from(NAMES)), symbol=draw(st.sampled_from(["BTCUSDT"] * 8 + ["ETHUSDT"])),
        timeframe=tf, open_time_ms=r_open, signal=draw(signals),
        tp_fraction=draw(st.sampled_from([0.01, 0.03, 0.2, 0.001] * 3 + [math.nan, -0.01])), sl_fraction=draw(st.sampled_from([0.005, 0.02])),
        context=draw(st.sampled_from([False, False, True])),
    )


KEYS = [sensor_key(n, tf) for n in NAMES for tf in TFS]
scores = st.lists(st.sampled_from([0.2, 0.45, 0.5, 0.55, 0.7, 0.9, 1.0]), min_size=len(KEYS),
                  max_size=len(KEYS)).map(lambda xs: dict(zip(KEYS, xs)))
params = st.builds(
    PlayerParams, min_score=st.floats(0, 0.8), min_voters=st.integers(1, 4), min_margin=st.floats(0, 0.5),
    min_confidence=st.floats(0, 0.5), cooldown_bars=st.integers(0, 3), htf_filter=st.just(True),
)


@settings(max_examples=250, deadline=None)
@given(readings=st.lists(reading(), min_size=3, max_size=16), sc=scores, p=params)
def test_never_decides_against_the_htf_context(readings: list[SensorReading], sc: dict[str, float],
                                               p: PlayerParams) -> None:
    verdict = decide(BAR, readings, sc, p)
    event(verdict.reason if isinstance(verdict, Skip) else "decision")
    if isinstance(verdict, Decision):
        trend = htf_trend(screen_readings(BAR, readings).usable)
        assert trend is not None and trend * verdict.side.sign >= 0
        assert p.tp_min_fraction <= verdict.tp_fraction <= p.tp_max_fraction
        assert p.sl_min_fraction <= verdict.sl_fraction <= p.sl_max_fraction
        assert 0 < verdict.confidence <= 1
        assert all(v.score >= p.min_score for v in verdict.votes)
    else:
        assert isinstance(verdict, Skip) and verdict.reason


OPS = st.lists(st.one_of(
    st.tuples(st.just("open"), st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT"]), st.integers(0, 6)),
    st.tuples(st.just("read"), st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT"]), st.integers(0, 6)),
    st.tuples(st.just("close"), st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT"]), st.integers(0, 6)),
    st.tuples(st.just("bracket"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.integers(0, 1)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, signal=st.sampled_from([1.0, -1.0, 0.6]), cooldown=st.integers(0, 2))
def test_never_two_verdicts_for_one_symbol_and_bar(ops: list[tuple[str, str, int]], signal: float,
                                                   cooldown: int) -> None:
    player = Player(PlayerParams(cooldown_bars=cooldown, htf_filter=False, min_voters=2),
                    ["BTCUSDT", "ETHUSDT"], clock=FakeClock(T0))
    verdicts: Counter[tuple[str, int]] = Counter()
    decisions: Counter[tuple[str, int]] = Counter()
    last_decision: dict[str, int] = {}
    for op, symbol, k in ops:
        open_ms = T0 + k * 60_000  # bars may repeat or go backwards: that is the point
        if op == "open":
            c = Decimal("100")
            player.open_bar(Candle(symbol, Timeframe.M1, open_ms, c, c, c, c, Decimal(1)))
        elif op == "read":
            player.add_readings([SensorReading(n, symbol, Timeframe.M1, open_ms, signal, 0.01, 0.005)
                                 for n in ("a", "b", "c")])
        elif op == "bracket":
            player.set_bracket_active(symbol, bool(k))
        else:
            v = player.close_bar(symbol)
            if v is None:
                continue
            verdicts[(v.symbol, v.open_time_ms)] += 1
            if isinstance(v, Decision):
                decisions[(v.symbol, v.open_time_ms)] += 1
                # and the per-symbol cooldown held, in that symbol's bars
                if symbol in last_decision:
                    assert (v.open_time_ms - last_decision[symbol]) // 60_000 > cooldown
                last_decision[symbol] = v.open_time_ms
    assert all(n == 1 for n in verdicts.values())
    assert all(n == 1 for n in decisions.values())
    assert all(sym != "DOGEUSDT" for sym, _ in verdicts)  # unknown symbols never get a verdict
