"""The fast player against a plain reference: same verdict, field for field, on any input.

``decide`` screens and weighs in one pass and builds its votes through slot descriptors;
``Player`` screens each reading once on arrival and weighs the screened ballot at close. Both
must give exactly what the straightforward rules give — the reference below is the player as
first written (screen → voters → Vote objects → sums → filters → sorted votes), kept here as
the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.events import Decision, SensorReading, Skip, Vote
from core.player import (
    SKIP_AGAINST_HTF,
    SKIP_BRACKET_OPEN,
    SKIP_COOLDOWN,
    SKIP_HTF_MISSING,
    SKIP_INSUFFICIENT,
    SKIP_LOW_CONFIDENCE,
    SKIP_LOW_MARGIN,
    SKIP_NO_QUALIFIED,
    SKIP_NO_SIGNAL,
    SKIP_TIE,
    Bar,
    Player,
    PlayerParams,
    SymbolBook,
    decide,
    htf_trend,
    screen_readings,
)
from core.sensor_tracker import NEUTRAL_SCORE, sensor_key
from core.types import Candle, Side, Timeframe

T0 = 1_689_678_780_000
BAR = Bar("BTCUSDT", Timeframe.M1, T0, Decimal("30000"), received_ms=17)
NAMES = [f"s{i}" for i in range(10)]
TFS = [Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1]


def reference_decide(bar: Bar, readings: Sequence[SensorReading], scores: Mapping[str, float],
                     params: PlayerParams, book: SymbolBook = SymbolBook(), *, decided_ms: int = 0) -> Decision | Skip:
    """The consensus rules written plainly (the player's first implementation)."""
    def skip(reason: str, detail: str = "") -> Skip:
        return Skip(bar.symbol, bar.open_time_ms, reason, detail)

    if book.bracket_active:
        return skip(SKIP_BRACKET_OPEN)
    if book.last_decision_index is not None:
        since = bar.index - book.last_decision_index
        if since <= params.cooldown_bars:
            return skip(SKIP_COOLDOWN, f"{since} of {params.cooldown_bars} bars since last decision")
    usable = screen_readings(bar, readings).usable
    voters = [r for r in usable if not r.context and not r.is_missing]
    if len(voters) < params.min_voters:
        return skip(SKIP_INSUFFICIENT, f"{len(voters)} present, {params.min_voters} needed")
    votes: list[tuple[Vote, SensorReading]] = []
    for r in voters:
        score = scores.get(sensor_key(r.sensor, r.timeframe), NEUTRAL_SCORE)
        if not score >= params.min_score:
            continue
        assert r.signal is not None
        votes.append((Vote(r.sensor, r.timeframe, r.signal, score, score * abs(r.signal)), r))
    if not votes:
        return skip(SKIP_NO_QUALIFIED, f"none of {len(voters)} scores >= {params.min_score}")
    long_w = math.fsum(v.weight for v, _ in votes if v.signal > 0)
    short_w = math.fsum(v.weight for v, _ in votes if v.signal < 0)
    total = long_w + short_w
    if total <= 0:
        return skip(SKIP_NO_SIGNAL)
    if long_w == short_w:
        return skip(SKIP_TIE, f"long {long_w:.4f} = short {short_w:.4f}")
    side = Side.BUY if long_w > short_w else Side.SELL
    win_w, lose_w = (long_w, short_w) if side is Side.BUY else (short_w, long_w)
    margin = (win_w - lose_w) / total
    if margin < params.min_margin:
        return skip(SKIP_LOW_MARGIN, f"margin {margin:.4f} < {params.min_margin}")
    winners = [(v, r) for v, r in votes if v.signal * side.sign > 0]
    confidence = margin * max(v.score for v, _ in winners)
    if confidence < params.min_confidence:
        return skip(SKIP_LOW_CONFIDENCE, f"confidence {confidence:.4f} < {params.min_confidence}")
    if params.htf_filter:
        trend = htf_trend(usable)
        if trend is None:
            return skip(SKIP_HTF_MISSING, "no context reading present")
        if trend * side.sign < 0:
            return skip(SKIP_AGAINST_HTF, f"{side.value} against HTF trend {trend:+d}")
    tp = math.fsum(v.weight * r.tp_fraction for v, r in winners) / win_w
    sl = math.fsum(v.weight * r.sl_fraction for v, r in winners) / win_w
    tp = min(max(tp, params.tp_min_fraction), params.tp_max_fraction)
    sl = min(max(sl, params.sl_min_fraction), params.sl_max_fraction)
    ordered = tuple(sorted((v for v, _ in votes), key=lambda v: (-v.weight, v.sensor, v.timeframe.ms)))
    return Decision(bar.symbol, side, bar.open_time_ms, confidence, tp, sl, ordered, bar.close,
                    decided_ms=decided_ms, candle_received_ms=bar.received_ms)


signals = st.one_of(st.floats(-1, 1), st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]),
                    st.sampled_from([None, math.nan, 3.0, -2.5, math.inf]))
fractions = st.sampled_from([0.01, 0.03, 0.2, 0.001, 0.5, math.nan, -0.01, 1.0, math.inf])


@st.composite
def reading(draw: st.DrawFn) -> SensorReading:
    tf = draw(st.sampled_from(TFS))
    close = T0 + 60_000
    shift = draw(st.sampled_from([0] * 8 + [-1, 1, -2]))  # mostly on time, sometimes stale/late or future
    return SensorReading(
        sensor=draw(st.sampled_from(NAMES)), symbol=draw(st.sampled_from(["BTCUSDT"] * 10 + ["ETHUSDT"])),
        timeframe=tf, open_time_ms=close - close % tf.ms - tf.ms + shift * tf.ms, signal=draw(signals),
        tp_fraction=draw(fractions), sl_fraction=draw(fractions), context=draw(st.sampled_from([False] * 3 + [True])),
    )


KEYS = [sensor_key(n, tf) for n in NAMES for tf in TFS]
# Some keys unknown (neutral), some equal (ties and equal weights), some far apart.
scores = st.dictionaries(st.sampled_from(KEYS), st.sampled_from([0.0, 0.2, 0.45, 0.5, 0.55, 0.7, 0.9, 1.0])
                         | st.floats(0, 1), max_size=len(KEYS))
params = st.builds(
    PlayerParams, min_score=st.sampled_from([0.0, 0.5]) | st.floats(0, 0.9), min_voters=st.integers(1, 5),
    min_margin=st.sampled_from([0.0, 0.1]) | st.floats(0, 0.6), min_confidence=st.sampled_from([0.0, 0.05]) | st.floats(0, 0.5),
    cooldown_bars=st.integers(0, 3), htf_filter=st.booleans(),
)
books = st.builds(SymbolBook, last_decision_index=st.sampled_from([None, None, BAR.index - 1, BAR.index - 5]),
                  bracket_active=st.sampled_from([False] * 5 + [True]))


def _same(got: Decision | Skip, want: Decision | Skip) -> None:
    assert type(got) is type(want)
    assert got == want
    if isinstance(got, Decision):
        assert isinstance(want, Decision)
        assert all(type(v) is Vote for v in got.votes)
        # floats compared bit for bit, not only ==
        assert [v.weight.hex() for v in got.votes] == [v.weight.hex() for v in want.votes]
        assert (got.tp_fraction.hex(), got.sl_fraction.hex(), got.confidence.hex()) == (
            want.tp_fraction.hex(), want.sl_fraction.hex(), want.confidence.hex())


@settings(max_examples=150, deadline=None)
@given(readings=st.lists(reading(), max_size=40), sc=scores, p=params, book=books)
def test_decide_gives_the_reference_verdict(readings: list[SensorReading], sc: dict[str, float], p: PlayerParams,
                                            book: SymbolBook) -> None:
    _same(decide(BAR, readings, sc, p, book, decided_ms=5), reference_decide(BAR, readings, sc, p, book, decided_ms=5))


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(reading(), max_size=15), max_size=4), sc=scores, p=params,
       bracket=st.sampled_from([False] * 5 + [True]))
def test_player_gives_the_reference_verdict_on_what_it_accepted(
    batches: list[list[SensorReading]], sc: dict[str, float], p: PlayerParams, bracket: bool
) -> None:
    clock = FakeClock(T0 + 60_000)
    player = Player(p, ["BTCUSDT", "ETHUSDT"], clock=clock)
    player.set_bracket_active("BTCUSDT", bracket)
    c = BAR.close
    assert player.open_bar(Candle("BTCUSDT", Timeframe.M1, T0, c, c, c, c, Decimal(1)), received_ms=17)
    for batch in batches:
        player.add_readings(batch)
    everything = [r for batch in batches for r in batch]
    want = reference_decide(BAR, everything, sc, p, SymbolBook(None, bracket), decided_ms=clock.now_ms())
    got = player.close_bar("BTCUSDT", sc)
    assert got is not None
    _same(got, want)


def test_a_plan_sized_bar_decides_exactly_like_the_reference() -> None:
    # 50 sensors on four timeframes plus context sensors, every signal distinct: a real burst's shape.
    readings = []
    for k in range(50):
        for tf in TFS:
            close = T0 + 60_000
            readings.append(SensorReading(f"n{k}", "BTCUSDT", tf, close - close % tf.ms - tf.ms,
                                          math.sin(k * 7 + tf.ms) * 0.9, 0.01 + k / 1000, 0.005 + k / 2000))
    readings += [SensorReading(f"ctx{k}", "BTCUSDT", Timeframe.H1, T0 + 60_000 - (T0 + 60_000) % 3_600_000 - 3_600_000,
                               0.3 * (k - 1), 0.1, 0.05, True) for k in range(4)]
    sc = {sensor_key(f"n{k}", tf): 0.4 + (k % 7) / 10 for k in range(50) for tf in TFS}
    p = PlayerParams(min_margin=0.0, min_confidence=0.0, htf_filter=False)
    got, want = decide(BAR, readings, sc, p), reference_decide(BAR, readings, sc, p)
    assert isinstance(want, Decision) and len(want.votes) > 100
    _same(got, want)


@st.composite
def batch_of(draw: st.DrawFn, tf: Timeframe, bar_open: int) -> tuple[SensorReading, ...]:
    """A tuple like the engine's: one symbol, timeframe and bar (its latest closed one)."""
    close = bar_open + 60_000
    shift = draw(st.sampled_from([0] * 6 + [-1, 1]))
    open_ms = close - close % tf.ms - tf.ms + shift * tf.ms
    names = draw(st.lists(st.sampled_from(NAMES), min_size=4, max_size=12))
    return tuple(SensorReading(n, draw(st.sampled_from(["BTCUSDT"] * 12 + ["ETHUSDT", "XRPUSDT"])), tf, open_ms,
                               draw(signals), draw(fractions), draw(fractions), draw(st.sampled_from([False] * 3 + [True])))
                 for n in names)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), sc=scores, p=params)
def test_reused_reading_tuples_screen_like_fresh_readings_across_bars(data: st.DataObject, sc: dict[str, float],
                                                                      p: PlayerParams) -> None:
    """The engine hands the same higher-timeframe tuples over bar after bar (the player caches
    their screening): every bar's verdict and every bad-input counter must be what screening
    each reading afresh gives, including tuples that collide with each other's keys."""
    cached = Player(p, ["BTCUSDT", "ETHUSDT"], clock=FakeClock(T0))
    fresh = Player(p, ["BTCUSDT", "ETHUSDT"], clock=FakeClock(T0))
    held = {tf: data.draw(batch_of(tf, T0)) for tf in (Timeframe.M15, Timeframe.H1)}
    for k in range(4):
        bar_open = T0 + k * 60_000
        held[Timeframe.M1] = data.draw(batch_of(Timeframe.M1, bar_open))
        if data.draw(st.booleans()):
            held[Timeframe.M5] = data.draw(batch_of(Timeframe.M5, bar_open))
        c = Decimal("30000")
        candle = Candle("BTCUSDT", Timeframe.M1, bar_open, c, c, c, c, Decimal(1))
        verdicts = []
        for player, as_tuple in ((cached, True), (fresh, False)):
            player.open_bar(candle)
            for batch in held.values():
                player.add_readings(batch if as_tuple else list(batch))
            verdicts.append(player.close_bar("BTCUSDT", sc))
        assert verdicts[0] is not None and verdicts[1] is not None
        _same(verdicts[0], verdicts[1])
        assert cached.bad_input_counts == fresh.bad_input_counts
        assert cached.skip_counts == fresh.skip_counts
