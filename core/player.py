"""The consensus player: sensor readings for one symbol at one closed bar → ``Decision`` | ``Skip``.

``decide()`` is pure: everything it needs (the bar, the readings, the sensor scores, the
parameters and the symbol's debounce state) is passed in. ``Player`` is the thin stateful
adapter the engine talks to: it owns the per-symbol debounce state, guarantees exactly one
verdict per (symbol, closed bar), rejects bad input with a counted reason, and has an async
``collect_and_decide`` that gathers readings from a queue until complete or a deadline.

Rules, in the order they are applied (each failure is a ``Skip`` with the stable key shown):

1. ``bracket_open``  the symbol has a pending or open bracket.
2. ``cooldown``      fewer than ``cooldown_bars`` bars of *this symbol's* timeframe have passed
                     since its last decision (bars are counted by open time, so gaps count).
3. Readings are screened (see ``screen_readings``); bad ones are ignored with a reason.
4. ``insufficient_data``  fewer than ``min_voters`` voting readings are present. A missing
                     reading (signal None/NaN) lowers the count; it is never a neutral vote.
5. ``no_qualified_voters``  no present voter scores ≥ ``min_score`` (the quality gate; the
                     tracker gives a neutral 0.5 below ``min_resolved_votes``).
6. ``no_signal``     every qualified voter says 0.
7. Weighted sums ΣL, ΣS with weight = score × |signal|.  ``tie`` if ΣL = ΣS;
   ``low_margin`` if (win − lose) / (ΣL + ΣS) < ``min_margin``;
   ``low_confidence`` if margin × the best winning voter's score < ``min_confidence``.
8. Higher-timeframe filter (``htf_filter``): the present context readings' majority of signs
   sets the trend (more positive → up, more negative → down, equal → flat). ``htf_missing``
   if no context reading is present (unknown is not "flat"); ``against_htf`` if the decision
   opposes the trend. A flat trend lets both sides through.

The adapter adds ``superseded``: a bar still collecting when the symbol's next bar opens is
skipped, never decided late.

TP/SL rule: the decision's distances are the weight-averaged ``tp_fraction`` / ``sl_fraction``
of the *winning* side's voters (weight = score × |signal|, the same weight that won the vote),
clamped to [tp_min_fraction, tp_max_fraction] and [sl_min_fraction, sl_max_fraction].
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import operator
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import compress, repeat

from config.settings import PlayerSettings
from core.events import Decision, SensorReading, Skip, Vote
from core.metrics import BAD_READINGS, DECISIONS, SKIPS
from core.ports import Clock
from core.sensor_tracker import NEUTRAL_SCORE, sensor_key
from core.types import Candle, Side, Timeframe

log = logging.getLogger(__name__)

# Stable skip keys (metrics labels and report keys).
SKIP_BRACKET_OPEN = "bracket_open"
SKIP_COOLDOWN = "cooldown"
SKIP_INSUFFICIENT = "insufficient_data"
SKIP_NO_QUALIFIED = "no_qualified_voters"
SKIP_NO_SIGNAL = "no_signal"
SKIP_TIE = "tie"
SKIP_LOW_MARGIN = "low_margin"
SKIP_LOW_CONFIDENCE = "low_confidence"
SKIP_HTF_MISSING = "htf_missing"
SKIP_AGAINST_HTF = "against_htf"
SKIP_SUPERSEDED = "superseded"  # the next bar opened before this one was closed: never decided late

# Stable bad-input keys.
BAD_UNKNOWN_SYMBOL = "unknown_symbol"
BAD_WRONG_SYMBOL = "wrong_symbol"
BAD_DUPLICATE_READING = "duplicate_reading"
BAD_STALE_READING = "stale_reading"
BAD_FUTURE_READING = "future_reading"
BAD_SIGNAL_RANGE = "signal_out_of_range"
BAD_DISTANCES = "bad_distances"
BAD_LATE_READING = "late_reading"
BAD_DUPLICATE_BAR = "duplicate_bar"
BAD_OUT_OF_ORDER_BAR = "out_of_order_bar"
BAD_WRONG_TIMEFRAME = "wrong_timeframe"
BAD_OPEN_CANDLE = "open_candle"
BAD_NO_BAR = "no_open_bar"
BAD_NAN_SIGNAL = "nan_signal"  # counted, and the sensor stays missing for this bar


@dataclass(frozen=True, slots=True)
class PlayerParams:
    """The player's thresholds (fractions, not percent)."""

    min_score: float = 0.5
    min_voters: int = 3
    min_margin: float = 0.10
    min_confidence: float = 0.05
    cooldown_bars: int = 5
    htf_filter: bool = True
    tp_min_fraction: float = 0.004
    tp_max_fraction: float = 0.12
    sl_min_fraction: float = 0.003
    sl_max_fraction: float = 0.08

    @classmethod
    def from_settings(cls, s: PlayerSettings) -> PlayerParams:
        return cls(
            min_score=s.min_score, min_voters=s.min_voters, min_margin=s.min_margin,
            min_confidence=s.min_confidence, cooldown_bars=s.cooldown_bars, htf_filter=s.htf_filter,
            tp_min_fraction=s.tp_min_fraction, tp_max_fraction=s.tp_max_fraction,
            sl_min_fraction=s.sl_min_fraction, sl_max_fraction=s.sl_max_fraction,
        )


@dataclass(frozen=True, slots=True)
class Bar:
    """The closed bar a decision is about (the symbol's decision timeframe, normally 1m)."""

    symbol: str
    timeframe: Timeframe
    open_time_ms: int
    close: Decimal
    received_ms: int = 0

    @property
    def close_ms(self) -> int:
        """The instant the bar closed (its successor's open time)."""
        return self.open_time_ms + self.timeframe.ms

    @property
    def index(self) -> int:
        """Bar number since the epoch: cooldowns count bars by time, per symbol."""
        return self.open_time_ms // self.timeframe.ms

    @classmethod
    def of(cls, candle: Candle, received_ms: int = 0) -> Bar:
        return cls(candle.symbol, candle.timeframe, candle.open_time_ms, candle.close, received_ms)


@dataclass(frozen=True, slots=True)
class SymbolBook:
    """A symbol's debounce state, as ``decide`` needs it."""

    last_decision_index: int | None = None
    bracket_active: bool = False


@dataclass(frozen=True, slots=True)
class Screened:
    """Readings that may be used, and the bad ones with why."""

    usable: tuple[SensorReading, ...]
    rejected: tuple[tuple[SensorReading, str], ...]


def screen_readings(bar: Bar, readings: Iterable[SensorReading]) -> Screened:
    """Keep the readings that belong to ``bar``; reject the rest with a reason.

    A reading belongs to the bar when it is for the bar's symbol and its own bar is the latest
    closed bar of its timeframe at the decision bar's close: ``close − tf < reading close ≤ close``.
    A later reading would be look-ahead (``future_reading``); an earlier one is stale. The
    first reading of a (sensor, timeframe) wins; repeats are ``duplicate_reading``. Missing
    readings (None/NaN) are *usable*: they count as absent voters, which is the point.
    """
    usable: list[SensorReading] = []
    rejected: list[tuple[SensorReading, str]] = []
    seen: set[str] = set()
    close_ms = bar.close_ms
    for r in readings:
        reason = _reading_problem(bar.symbol, close_ms, r)
        if reason is None:
            key = sensor_key(r.sensor, r.timeframe)
            if key in seen:
                reason = BAD_DUPLICATE_READING
            else:
                seen.add(key)
        if reason is None:
            usable.append(r)
        else:
            rejected.append((r, reason))
    return Screened(tuple(usable), tuple(rejected))


def _reading_problem(symbol: str, close_ms: int, r: SensorReading) -> str | None:
    if r.symbol != symbol:
        return BAD_WRONG_SYMBOL
    tf_ms = r.timeframe.ms
    r_close = r.open_time_ms + tf_ms
    if r_close > close_ms:
        return BAD_FUTURE_READING
    if r_close <= close_ms - tf_ms:
        return BAD_STALE_READING
    if r.is_missing:
        return None
    assert r.signal is not None
    if not -1.0 <= r.signal <= 1.0:
        return BAD_SIGNAL_RANGE
    if not r.context and not (
        math.isfinite(r.tp_fraction) and math.isfinite(r.sl_fraction)
        and 0 < r.tp_fraction < 1 and 0 < r.sl_fraction < 1
    ):
        return BAD_DISTANCES
    return None


def decide(
    bar: Bar,
    readings: Sequence[SensorReading],
    scores: Mapping[str, float],
    params: PlayerParams,
    book: SymbolBook = SymbolBook(),
    *,
    decided_ms: int = 0,
) -> Decision | Skip:
    """Apply the consensus rules (module docstring) to one symbol's readings at one closed bar.

    ``scores`` maps ``sensor_key(sensor, timeframe)`` to the tracker's score; an unknown key
    scores a neutral 0.5. Bad readings are ignored here (``Player`` also counts them).
    """
    early = debounce(bar, params, book)
    if early is not None:
        return early
    return _weigh(bar, _Ballot.of(bar, readings), scores, params, decided_ms)


def debounce(bar: Bar, params: PlayerParams, book: SymbolBook) -> Skip | None:
    """Rules 1 and 2: an open bracket or a cooldown skip the bar before any reading is read."""
    if book.bracket_active:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_BRACKET_OPEN)
    if book.last_decision_index is not None:
        since = bar.index - book.last_decision_index
        if since <= params.cooldown_bars:
            return Skip(bar.symbol, bar.open_time_ms, SKIP_COOLDOWN,
                        f"{since} of {params.cooldown_bars} bars since last decision")
    return None


# Per-plan lookups built once: Timeframe.ms is a property, and sensor_key's cache hashes a
# (name, timeframe) tuple per call; the hot loops below use plain dicts instead.
_TF_MS: dict[Timeframe, int] = {tf: tf.ms for tf in Timeframe}
_KEYS: dict[Timeframe, dict[str, str]] = {tf: {} for tf in Timeframe}
_MAX_KEYS_PER_TIMEFRAME = 8192  # a plan has a few hundred sensors; a runaway caller cannot grow this


def _new_key(name: str, tf: Timeframe) -> str:
    key = sensor_key(name, tf)
    known = _KEYS[tf]
    if len(known) < _MAX_KEYS_PER_TIMEFRAME:
        known[name] = key
    return key


@dataclass(slots=True)
class _Ballot:
    """A bar's usable readings, already split the way ``_weigh`` needs them.

    The voters — present non-context readings, in reading order — are held as parallel lists
    (reading, tracker key, signal, |signal|) so that ``_weigh`` works column by column with
    C-level ``map``/``compress`` instead of a Python loop per voter. ``ups`` / ``downs`` /
    ``context`` count the present context readings' signs (the HTF trend). ``Player`` fills one
    reading by reading (``add_readings`` screens as it goes) or merges a screened tuple's
    ballot; ``of`` screens a whole sequence at once exactly like ``screen_readings``.
    """

    readings: list[SensorReading] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    signals: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)  # abs(signal)
    ups: int = 0
    downs: int = 0
    context: int = 0

    def vote(self, r: SensorReading, key: str, signal: float) -> None:
        self.readings.append(r)
        self.keys.append(key)
        self.signals.append(signal)
        self.sizes.append(abs(signal))

    def merge(self, other: _Ballot) -> None:
        """Append another ballot's voters and context counts (its readings came later)."""
        self.readings += other.readings
        self.keys += other.keys
        self.signals += other.signals
        self.sizes += other.sizes
        self.ups += other.ups
        self.downs += other.downs
        self.context += other.context

    @classmethod
    def of(cls, bar: Bar, readings: Iterable[SensorReading]) -> _Ballot:
        ballot = cls()
        vote = ballot.vote
        seen: set[str] = set()
        symbol, close_ms = bar.symbol, bar.close_ms
        tf_ms_of, keys_of = _TF_MS.__getitem__, _KEYS.__getitem__
        ups = downs = context = 0
        for r in readings:
            # The checks of _reading_problem, inlined (this loop runs for every reading of every bar).
            if r.symbol != symbol:
                continue
            tf = r.timeframe
            tf_ms = tf_ms_of(tf)
            r_close = r.open_time_ms + tf_ms
            if r_close > close_ms or r_close <= close_ms - tf_ms:
                continue
            signal = r.signal
            present = signal is not None and signal == signal  # NaN != NaN: missing
            if present:
                if not -1.0 <= signal <= 1.0:  # type: ignore[operator]
                    continue
                if not r.context:
                    tp, sl = r.tp_fraction, r.sl_fraction
                    # math.isfinite(x) and 0 < x < 1, for floats: NaN and ±inf fail the comparisons
                    if not (0.0 < tp < 1.0 and 0.0 < sl < 1.0):
                        continue
            name = r.sensor
            key = keys_of(tf).get(name) or _new_key(name, tf)
            if key in seen:
                continue
            seen.add(key)
            if not present:
                continue
            if r.context:
                context += 1
                if signal > 0:  # type: ignore[operator]
                    ups += 1
                elif signal < 0:  # type: ignore[operator]
                    downs += 1
            else:
                vote(r, key, signal)  # type: ignore[arg-type]
        ballot.ups, ballot.downs, ballot.context = ups, downs, context
        return ballot

    def add(self, r: SensorReading, key: str) -> None:
        """Count one screened, usable reading (missing ones are usable but count nowhere)."""
        signal = r.signal
        if signal is None or signal != signal:
            return
        if r.context:
            self.context += 1
            if signal > 0:
                self.ups += 1
            elif signal < 0:
                self.downs += 1
        else:
            self.vote(r, key, signal)

    @property
    def trend(self) -> int | None:
        """``htf_trend`` of the usable readings."""
        if self.context == 0:
            return None
        return (self.ups > self.downs) - (self.ups < self.downs)


# Vote is a frozen slotted dataclass: its generated __init__ stores each field through
# object.__setattr__. Storing them through the slot descriptors builds the very same object in
# well under half the time (the votes of every decision are built here; a test compares both).
_NEW_VOTE = object.__new__
_VOTE_FIELDS = ("sensor", "timeframe", "signal", "score", "weight")
if tuple(f.name for f in dataclasses.fields(Vote)) != _VOTE_FIELDS:  # fail loudly, never half-built
    raise RuntimeError("Vote's fields changed: update core.player._make_votes")
_SET_VOTE = tuple(getattr(Vote, name).__set__ for name in _VOTE_FIELDS)


def _make_votes(ranked: list[tuple[float, str, int, int, SensorReading, float]]) -> tuple[Vote, ...]:
    set_sensor, set_tf, set_signal, set_score, set_weight = _SET_VOTE
    out = []
    for neg_weight, sensor, _tf_ms, _i, r, score in ranked:
        v = _NEW_VOTE(Vote)
        set_sensor(v, sensor)
        set_tf(v, r.timeframe)
        set_signal(v, r.signal)
        set_score(v, score)
        set_weight(v, -neg_weight)
        out.append(v)
    return tuple(out)


def _weigh(
    bar: Bar, ballot: _Ballot, scores: Mapping[str, float], params: PlayerParams, decided_ms: int
) -> Decision | Skip:
    """Rules 4–8 on a screened ballot (the weights and sums exactly as the docstring says).

    Column by column: each voter's score, whether it qualifies, its weight and side are lists
    built by C-level ``map``; the sums pick their terms with ``compress``.
    """
    n = len(ballot.keys)
    if n < params.min_voters:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_INSUFFICIENT, f"{n} present, {params.min_voters} needed")
    score_of = list(map(scores.get, ballot.keys, repeat(NEUTRAL_SCORE, n)))
    qualified = list(map(operator.ge, score_of, repeat(params.min_score, n)))  # a NaN score never qualifies
    if not any(qualified):
        return Skip(bar.symbol, bar.open_time_ms, SKIP_NO_QUALIFIED, f"none of {n} scores >= {params.min_score}")
    weights = list(map(operator.mul, score_of, ballot.sizes))  # score × |signal|
    signals = ballot.signals
    longs = list(map(operator.and_, qualified, map(operator.gt, signals, repeat(0, n))))
    shorts = list(map(operator.and_, qualified, map(operator.lt, signals, repeat(0, n))))

    # fsum is correctly rounded, so the order of the terms never changes a sum.
    long_w = math.fsum(compress(weights, longs))
    short_w = math.fsum(compress(weights, shorts))
    total = long_w + short_w
    if total <= 0:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_NO_SIGNAL)
    if long_w == short_w:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_TIE, f"long {long_w:.4f} = short {short_w:.4f}")
    side = Side.BUY if long_w > short_w else Side.SELL
    win_w, lose_w = (long_w, short_w) if side is Side.BUY else (short_w, long_w)
    margin = (win_w - lose_w) / total
    if margin < params.min_margin:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_LOW_MARGIN, f"margin {margin:.4f} < {params.min_margin}")
    winning = longs if side is Side.BUY else shorts  # qualified voters on the decision's side
    confidence = margin * max(compress(score_of, winning))
    if confidence < params.min_confidence:
        return Skip(bar.symbol, bar.open_time_ms, SKIP_LOW_CONFIDENCE,
                    f"confidence {confidence:.4f} < {params.min_confidence}")

    if params.htf_filter:
        trend = ballot.trend
        if trend is None:
            return Skip(bar.symbol, bar.open_time_ms, SKIP_HTF_MISSING, "no context reading present")
        if trend * side.sign < 0:
            return Skip(bar.symbol, bar.open_time_ms, SKIP_AGAINST_HTF, f"{side.value} against HTF trend {trend:+d}")

    winners = list(compress(zip(weights, ballot.readings), winning))
    tp = math.fsum([w * r.tp_fraction for w, r in winners]) / win_w
    sl = math.fsum([w * r.sl_fraction for w, r in winners]) / win_w
    tp = min(max(tp, params.tp_min_fraction), params.tp_max_fraction)
    sl = min(max(sl, params.sl_min_fraction), params.sl_max_fraction)
    # Heaviest first, then by name and timeframe; the index keeps equal keys in vote order
    # (what a stable sort on the first three would do).
    tf_ms_of = _TF_MS.__getitem__
    ranked = sorted(
        (-w, r.sensor, tf_ms_of(r.timeframe), i, r, score)
        for i, (w, r, score) in enumerate(compress(zip(weights, ballot.readings, score_of), qualified))
    )
    return Decision(
        symbol=bar.symbol, side=side, open_time_ms=bar.open_time_ms, confidence=confidence,
        tp_fraction=tp, sl_fraction=sl, votes=_make_votes(ranked), reference_price=bar.close,
        decided_ms=decided_ms, candle_received_ms=bar.received_ms,
    )


def htf_trend(readings: Iterable[SensorReading]) -> int | None:
    """+1 / −1 / 0 from the majority of present context signals' signs; None if none present."""
    ups = downs = present = 0
    for r in readings:
        if not r.context or r.is_missing:
            continue
        present += 1
        assert r.signal is not None
        if r.signal > 0:
            ups += 1
        elif r.signal < 0:
            downs += 1
    if present == 0:
        return None
    return (ups > downs) - (ups < downs)


def winning_keys(decision: Decision) -> list[str]:
    """Tracker keys of the voters on the decision's side (what sizing pools its stats over)."""
    return [sensor_key(v.sensor, v.timeframe) for v in decision.votes if v.signal * decision.side.sign > 0]


# ----------------------------------------------------------------------------- adapter

_MIN_CACHED_BATCH = 4  # shorter tuples are screened reading by reading


@dataclass(slots=True)
class _BatchScreen:
    """How a tuple of readings of one symbol, timeframe and bar screens, whatever bar it joins.

    Everything but the time check depends on the readings alone: the range and distance
    rejections, duplicates inside the tuple (the first one wins), the NaN counter, the voters
    and the context signs. The time check is one comparison for all of them.
    """

    batch: tuple[SensorReading, ...]
    symbol: str
    r_close: int
    tf_ms: int
    keys: set[str]
    ballot: _Ballot
    bad: tuple[tuple[str, int], ...]
    nan: int

    @classmethod
    def of(cls, batch: tuple[SensorReading, ...]) -> _BatchScreen | None:
        """None unless every reading shares the first one's symbol, timeframe and open time."""
        first = batch[0]
        symbol, tf, open_ms = first.symbol, first.timeframe, first.open_time_ms
        for r in batch:
            if r.symbol != symbol or r.timeframe is not tf or r.open_time_ms != open_ms:
                return None
        keys_of = _KEYS[tf].get
        keys: set[str] = set()
        bad: Tally[str] = Tally()
        ballot = _Ballot()
        readings, voter_keys, signals, sizes = ballot.readings, ballot.keys, ballot.signals, ballot.sizes
        ups = downs = context = nan = 0
        for r in batch:
            signal = r.signal
            present = signal is not None and signal == signal  # NaN != NaN: missing
            if present:
                if not -1.0 <= signal <= 1.0:  # type: ignore[operator]
                    bad[BAD_SIGNAL_RANGE] += 1
                    continue
                if not r.context and not (0.0 < r.tp_fraction < 1.0 and 0.0 < r.sl_fraction < 1.0):
                    bad[BAD_DISTANCES] += 1
                    continue
            key = keys_of(r.sensor) or _new_key(r.sensor, tf)
            if key in keys:
                bad[BAD_DUPLICATE_READING] += 1
                continue
            keys.add(key)
            if not present:
                if signal is not None:
                    nan += 1  # a NaN signal: a sensor bug, counted (None is a warm-up, not counted)
                continue
            if r.context:
                context += 1
                if signal > 0:  # type: ignore[operator]
                    ups += 1
                elif signal < 0:  # type: ignore[operator]
                    downs += 1
            else:
                readings.append(r)
                voter_keys.append(key)
                signals.append(signal)  # type: ignore[arg-type]
                sizes.append(abs(signal))  # type: ignore[arg-type]
        ballot.ups, ballot.downs, ballot.context = ups, downs, context
        tf_ms = _TF_MS[tf]
        return cls(batch, symbol, open_ms + tf_ms, tf_ms, keys, ballot, tuple(bad.items()), nan)


@dataclass(slots=True)
class _SymbolState:
    last_decision_index: int | None = None
    bracket_active: bool = False
    last_bar_open_ms: int | None = None  # newest bar opened (decided or collecting)
    pending: Bar | None = None
    ballot: _Ballot = field(default_factory=_Ballot)  # the pending bar's usable readings, screened
    keys: set[str] = field(default_factory=set)  # tracker keys accepted for the pending bar


class Player:
    """Stateful adapter around ``decide``: one verdict per (symbol, closed bar), bad input counted.

    Engine protocol, per symbol and closed bar of ``timeframe``:
    ``open_bar(candle)`` → ``add_readings(...)`` (any number of batches) → ``close_bar(symbol)``,
    or all three at once with ``collect_and_decide``. ``set_bracket_active`` follows the
    croupier (True from the entry request until the bracket is closed).
    """

    def __init__(
        self, params: PlayerParams, symbols: Iterable[str], *, clock: Clock,
        timeframe: Timeframe = Timeframe.M1,
    ) -> None:
        self._p = params
        self._clock = clock
        self.timeframe = timeframe
        self._symbols: dict[str, _SymbolState] = {s: _SymbolState() for s in symbols}
        # screened reading tuples by id (each entry holds its tuple, so an id is never reused
        # while cached); bounded: a few timeframes per symbol are live at any time
        self._batches: dict[int, _BatchScreen] = {}
        self._max_batches = max(64, 16 * len(self._symbols))
        self.skip_counts: Tally[str] = Tally()
        self.bad_input_counts: Tally[str] = Tally()
        self.decision_counts: Tally[str] = Tally()

    # -- state the engine feeds ---------------------------------------------------------
    def set_bracket_active(self, symbol: str, active: bool) -> None:
        state = self._symbols.get(symbol)
        if state is None:
            self._bad(BAD_UNKNOWN_SYMBOL)
            return
        state.bracket_active = active

    def open_bar(self, candle: Candle, received_ms: int = 0) -> bool:
        """Start collecting readings for a closed bar; False (counted) for bad or repeated bars.

        A still-collecting earlier bar of the symbol is skipped as ``superseded`` (counted), so
        a stuck bar never blocks the symbol and is never decided late on stale prices.
        """
        state = self._symbols.get(candle.symbol)
        reason = None
        if state is None:
            reason = BAD_UNKNOWN_SYMBOL
        elif candle.timeframe is not self.timeframe:
            reason = BAD_WRONG_TIMEFRAME
        elif not candle.closed:
            reason = BAD_OPEN_CANDLE
        elif state.last_bar_open_ms is not None and candle.open_time_ms <= state.last_bar_open_ms:
            reason = BAD_DUPLICATE_BAR if candle.open_time_ms == state.last_bar_open_ms else BAD_OUT_OF_ORDER_BAR
        if reason is not None:
            self._bad(reason)
            return False
        assert state is not None
        if state.pending is not None:
            self._count_skip(SKIP_SUPERSEDED)
        state.pending = Bar.of(candle, received_ms)
        state.ballot, state.keys = _Ballot(), set()
        state.last_bar_open_ms = candle.open_time_ms
        return True

    def add_readings(self, readings: Iterable[SensorReading]) -> int:
        """Attach readings to their symbol's collecting bar; returns how many were accepted.

        Each reading is screened here, once (the checks of ``_reading_problem`` plus lateness and
        duplicates), so ``close_bar`` weighs the ballot without looking at a reading again.

        A *tuple* of readings of one symbol, timeframe and bar (what the engine hands over: a
        higher timeframe's readings come again on every base bar until that timeframe closes)
        is screened once and remembered; adding it again costs one time check and a few set
        operations, with exactly the verdicts and counters of reading-by-reading screening.
        """
        if type(readings) is tuple and len(readings) >= _MIN_CACHED_BATCH:
            screen = self._batches.get(id(readings))
            if screen is None or screen.batch is not readings:
                screen = _BatchScreen.of(readings)
                if screen is not None:
                    if len(self._batches) >= self._max_batches:
                        del self._batches[next(iter(self._batches))]  # the oldest
                    self._batches[id(readings)] = screen
            if screen is not None:
                accepted = self._add_screened(screen)
                if accepted is not None:
                    return accepted
        return self._add_each(readings)

    def _add_screened(self, screen: _BatchScreen) -> int | None:
        """Add a screened batch; None when only reading-by-reading screening can say (duplicates)."""
        n = len(screen.batch)
        state = self._symbols.get(screen.symbol)
        if state is None:
            self._bad(BAD_UNKNOWN_SYMBOL, n)
            return 0
        bar = state.pending
        if bar is None:
            self._bad(BAD_LATE_READING if state.last_bar_open_ms is not None else BAD_NO_BAR, n)
            return 0
        close_ms = bar.open_time_ms + _TF_MS[bar.timeframe]
        if screen.r_close > close_ms:
            self._bad(BAD_FUTURE_READING, n)
            return 0
        if screen.r_close <= close_ms - screen.tf_ms:
            self._bad(BAD_LATE_READING if screen.r_close <= bar.open_time_ms else BAD_STALE_READING, n)
            return 0
        if not screen.keys.isdisjoint(state.keys):
            return None
        for reason, count in screen.bad:
            self._bad(reason, count)
        if screen.nan:
            self._bad(BAD_NAN_SIGNAL, screen.nan)
        state.ballot.merge(screen.ballot)
        state.keys |= screen.keys
        return len(screen.keys)

    def _add_each(self, readings: Iterable[SensorReading]) -> int:
        accepted = 0
        symbols = self._symbols
        tf_ms_of, keys_of = _TF_MS.__getitem__, _KEYS.__getitem__
        for r in readings:
            state = symbols.get(r.symbol)
            if state is None:
                self._bad(BAD_UNKNOWN_SYMBOL)
                continue
            bar = state.pending
            if bar is None:
                self._bad(BAD_LATE_READING if state.last_bar_open_ms is not None else BAD_NO_BAR)
                continue
            tf = r.timeframe
            name = r.sensor
            key = keys_of(tf).get(name) or _new_key(name, tf)
            tf_ms = tf_ms_of(tf)
            r_close = r.open_time_ms + tf_ms
            close_ms = bar.open_time_ms + tf_ms_of(bar.timeframe)
            signal = r.signal
            problem = None
            if r_close > close_ms:
                problem = BAD_FUTURE_READING
            elif r_close <= close_ms - tf_ms:
                # its bar closed before this one opened: already decided, so late rather than stale
                problem = BAD_LATE_READING if r_close <= bar.open_time_ms else BAD_STALE_READING
            elif signal is not None and signal == signal:  # present (NaN != NaN)
                if not -1.0 <= signal <= 1.0:
                    problem = BAD_SIGNAL_RANGE
                elif not r.context and not (0.0 < r.tp_fraction < 1.0 and 0.0 < r.sl_fraction < 1.0):
                    problem = BAD_DISTANCES  # NaN and ±inf fail the comparisons
            if problem is None and key in state.keys:
                problem = BAD_DUPLICATE_READING
            if problem is not None:
                self._bad(problem)
                continue
            if signal is not None and math.isnan(signal):
                self._bad(BAD_NAN_SIGNAL)  # a sensor bug, not a warm-up: worth a counter
            state.ballot.add(r, key)
            state.keys.add(key)
            accepted += 1
        return accepted

    def collected(self, symbol: str) -> int:
        state = self._symbols.get(symbol)
        return len(state.keys) if state and state.pending else 0

    def close_bar(self, symbol: str, scores: Mapping[str, float] | None = None) -> Decision | Skip | None:
        """Decide the symbol's collecting bar exactly once; None if no bar is collecting.

        The verdict is ``decide``'s on the accepted readings (they were screened on arrival).
        """
        state = self._symbols.get(symbol)
        if state is None or state.pending is None:
            return None
        bar, ballot = state.pending, state.ballot
        state.pending, state.ballot, state.keys = None, _Ballot(), set()
        book = SymbolBook(state.last_decision_index, state.bracket_active)
        verdict = debounce(bar, self._p, book) or _weigh(
            bar, ballot, scores if scores is not None else {}, self._p, self._clock.now_ms())
        if isinstance(verdict, Decision):
            state.last_decision_index = bar.index
            self.decision_counts[verdict.side.value] += 1
            DECISIONS.labels(side=verdict.side.value).inc()
        else:
            self._count_skip(verdict.reason)
        return verdict

    def _count_skip(self, reason: str) -> None:
        self.skip_counts[reason] += 1
        SKIPS.labels(reason=reason).inc()

    async def collect_and_decide(
        self, candle: Candle, inbox: asyncio.Queue[Sequence[SensorReading]], *, expected: int,
        timeout_s: float, scores: Mapping[str, float] | None = None, received_ms: int = 0,
    ) -> Decision | Skip | None:
        """Open the bar, take reading batches from ``inbox`` until ``expected`` readings arrived
        or ``timeout_s`` passed on the clock, then decide. Missing sensors stay missing."""
        if not self.open_bar(candle, received_ms):
            return None
        deadline = self._clock.monotonic() + timeout_s
        while self.collected(candle.symbol) < expected:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            batch = await _get_until(inbox, self._clock, remaining)
            if batch is None:
                break
            self.add_readings(batch)
        return self.close_bar(candle.symbol, scores)

    def report(self) -> dict[str, dict[str, int]]:
        """Counts for the session report: decisions by side, skips and bad input by reason."""
        return {
            "decisions": dict(sorted(self.decision_counts.items())),
            "skips": dict(sorted(self.skip_counts.items())),
            "bad_input": dict(sorted(self.bad_input_counts.items())),
        }

    # -- persistence (cooldowns survive a restart) ---------------------------------------
    def to_dict(self) -> dict[str, dict[str, int | None]]:
        return {
            s: {"last_decision_index": st.last_decision_index, "last_bar_open_ms": st.last_bar_open_ms}
            for s, st in self._symbols.items()
        }

    def restore(self, data: Mapping[str, Mapping[str, int | None]]) -> None:
        for symbol, d in data.items():
            state = self._symbols.get(symbol)
            if state is not None:
                state.last_decision_index = d.get("last_decision_index")
                state.last_bar_open_ms = d.get("last_bar_open_ms")

    def _bad(self, reason: str, count: int = 1) -> None:
        self.bad_input_counts[reason] += count
        BAD_READINGS.labels(reason=reason).inc(count)


async def _get_until(
    inbox: asyncio.Queue[Sequence[SensorReading]], clock: Clock, seconds: float
) -> Sequence[SensorReading] | None:
    """The next batch, or None when ``seconds`` pass first on ``clock`` (works with FakeClock)."""
    getter = asyncio.ensure_future(inbox.get())
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (getter, sleeper):
            if not task.done():
                task.cancel()
        await asyncio.gather(getter, sleeper, return_exceptions=True)
    if getter in done and not getter.cancelled():
        return getter.result()
    return None
