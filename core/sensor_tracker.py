"""Adaptive sensor scores: every vote is judged on the bars that follow it.

One ``SensorTracker`` per process (Casino-V3 had two disconnected trackers that disagreed).
It learns from *every* present, non-zero voting reading (context readings only feed the
player's HTF filter) — whether or not the player acted on it and whether or not the sensor
passed the quality gate, so a gated sensor can recover.

How a vote resolves
    A reading of sensor ``s`` on timeframe ``tf`` for ``symbol`` becomes an open vote at the
    moment its bar closed (``entry_ms``), at that moment's price (``entry_price``), in the
    direction of its signal, with its own ``tp_fraction`` / ``sl_fraction``. It is judged on
    the closed candles (normally 1m) of the same symbol whose open time is ≥ ``entry_ms``:

    - the first candle whose range reaches the SL price → **loss** (R = −1);
    - the first candle whose range reaches the TP price → **win** (R = tp / sl);
    - both inside one candle → **loss** (the simulator's pessimistic same-bar rule: stop first);
    - no touch until ``horizon_bars`` bars *of the vote's own timeframe* have passed → **expired**
      at the last judged close (or, if candles were missing across the horizon's end, at the
      next candle's open): R = signed return / sl; it counts as a win only if R > 0.
    The judging itself lives in ``core/vote_book.py`` (heap-indexed, one book per symbol).

Score (Casino-V3's blend, each component mapped to [0, 1], 0.5 = neutral)
    0.40 expectancy      0.5 + 0.5 × mean R, clamped (mean R = +1 → 1.0, −1 → 0.0)
    0.25 profit factor   PF = Σ winning R / Σ |losing R|; PF ≥ 1 → 0.5 + min((PF−1)/2, 0.5),
                         PF < 1 → PF / 2; no losses → 1.0; nothing won or lost → 0.5
    0.20 streak          +n wins → 0.5 + min(n/5, 0.5); −n losses → 0.5 − min(n/3, 0.5)
    0.10 recent win rate wins / votes over the last ``recent_window`` resolved votes
    0.05 recency         0.95 ^ days since the last win (capped at 30 days), market time; 0.5 if
                         it never won
    V3 measured expectancy in raw price fractions (× 25); Casino uses R-multiples so that a 1m
    sensor (1 % stop) and a 1h sensor (8 % stop) are scored on the same scale. Fewer than
    ``min_resolved_votes`` resolved votes in the window → a neutral 0.5.

Memory is bounded: ``window`` resolved votes per sensor key, at most ``max_open_votes`` open
votes in total (the oldest is dropped and counted if a symbol's candles stop arriving).
``to_dict`` / ``from_dict`` round-trip the whole state through JSON; scores are computed
with ``math.fsum`` from the stored outcomes, so a restored tracker scores identically.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections import deque
from types import MappingProxyType
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from config.settings import PlayerSettings, TrackerSettings
from core.events import SensorReading
from core.metrics import SENSOR_SCORE, TRACKER_VOTES
from core.types import Candle, Timeframe
from core.vote_book import OpenVote, Outcome, VoteBook, new_open_vote

log = logging.getLogger(__name__)

STATE_VERSION = 1
NEUTRAL_SCORE = 0.5
_DAY_MS = 86_400_000
_JSON_ROWS = 4096  # dedupe marks serialised per piece by to_json


_OUTCOME_COUNTERS = {o: TRACKER_VOTES.labels(outcome=o.value) for o in Outcome}


@functools.lru_cache(maxsize=8192)  # a few hundred (sensor, timeframe) pairs, asked per reading
def sensor_key(sensor: str, timeframe: Timeframe) -> str:
    """The name a sensor is scored under: the same indicator on 1m and 1h scores separately."""
    return f"{sensor}@{timeframe.value}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """What happened to one vote; ``r`` is the result in multiples of its stop distance."""

    key: str
    symbol: str
    entry_ms: int
    outcome: Outcome
    r: float
    resolved_ms: int

    @property
    def won(self) -> bool:
        return self.outcome is Outcome.WIN or (self.outcome is Outcome.EXPIRED and self.r > 0)


@dataclass(frozen=True, slots=True)
class PerformanceStats:
    """Pooled resolved outcomes of some sensors, as sizing needs them (R-multiples)."""

    resolved: int
    wins: int
    losses: int
    avg_win_r: float
    avg_loss_r: float  # positive magnitude

    @property
    def win_rate(self) -> float:
        return self.wins / self.resolved if self.resolved else 0.0

    @property
    def payoff(self) -> float:
        """Average win / average loss (Kelly's b); 0 when undefined."""
        return self.avg_win_r / self.avg_loss_r if self.avg_loss_r > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """The tracker's settings (``[tracker]`` plus ``[player].min_resolved_votes``)."""

    horizon_bars: int = 60
    window: int = 200
    recent_window: int = 20
    min_resolved_votes: int = 10
    max_open_votes: int = 50_000
    weight_expectancy: float = 0.40
    weight_profit_factor: float = 0.25
    weight_streak: float = 0.20
    weight_recent_win_rate: float = 0.10
    weight_recency: float = 0.05

    @classmethod
    def from_settings(cls, tracker: TrackerSettings, player: PlayerSettings) -> TrackerParams:
        return cls(
            horizon_bars=tracker.horizon_bars, window=tracker.window,
            recent_window=tracker.recent_window, min_resolved_votes=player.min_resolved_votes,
            max_open_votes=tracker.max_open_votes,
            weight_expectancy=tracker.weight_expectancy,
            weight_profit_factor=tracker.weight_profit_factor, weight_streak=tracker.weight_streak,
            weight_recent_win_rate=tracker.weight_recent_win_rate,
            weight_recency=tracker.weight_recency,
        )


class _History:
    """Resolved outcomes of one sensor key (rolling window) and its last win.

    ``rs`` holds the window's R values, oldest first. Whether an outcome won is not stored: it
    is ``r > 0`` for every outcome (a win's R is tp / sl > 0, a loss's −1, an expiry won only
    if R > 0 — ``Resolution.won``), so a window is a deque of floats rather than of (R, won)
    tuples: 56 B fewer per outcome, up to ``window`` outcomes × every sensor key, filling as a
    session goes (bench/soak.py). ``wins`` / ``losses`` hold the same R values split by
    outcome, oldest first (what ``performance`` pools); ``memo`` is the last score and the
    market time it was computed at.
    """

    __slots__ = ("rs", "last_win_ms", "partial", "wins", "losses", "memo")

    def __init__(self, window: int) -> None:
        self.rs: deque[float] = deque(maxlen=window)
        self.last_win_ms: int | None = None
        self.partial: float | None = None  # cached blend without recency; None = recompute
        self.wins: deque[float] = deque()
        self.losses: deque[float] = deque()
        self.memo: tuple[int, float] | None = None  # (now_ms, score); None = recompute

    def append(self, r: float, won: bool) -> None:
        """Add an outcome; the window's oldest one leaves ``wins``/``losses`` with it."""
        if won != (r > 0):  # the invariant the compact window relies on (see the class docstring)
            raise ValueError(f"an outcome of R {r} cannot be {'a win' if won else 'a loss'}")
        rs = self.rs
        if rs.maxlen is not None and len(rs) == rs.maxlen:
            (self.wins if rs[0] > 0 else self.losses).popleft()
        rs.append(r)
        (self.wins if won else self.losses).append(r)
        self.partial = None
        self.memo = None

    def split(self) -> None:
        """Rebuild ``wins``/``losses`` from ``rs`` (after a restore)."""
        self.wins = deque(r for r in self.rs if r > 0)
        self.losses = deque(r for r in self.rs if not r > 0)
        self.partial = None
        self.memo = None

    def blend(self, p: TrackerParams) -> float:
        """The weighted blend without recency: ``score_components``' arithmetic, bit for bit,
        from the kept splits instead of lists rebuilt from the whole window (a resolved vote
        re-blends its key on the next decision: ~25 keys a bar with the default ensemble).

        Equal because ``math.fsum`` is correctly rounded: the sum over ``wins`` then ``losses``
        is the sum over the window in its order; ``wins`` are the R > 0 and ``losses`` the
        R <= 0, whose sum is that of the R < 0 (a zero adds nothing; a −0.0 total reads as no
        loss, as 0.0 does). The streak and recent win rate read the newest outcomes."""
        rs = self.rs
        n = len(rs)
        wins, losses = self.wins, self.losses
        expectancy = math.fsum(itertools.chain(wins, losses)) / n if n else 0.0
        pf_score = profit_factor_score(math.fsum(wins), -math.fsum(losses))
        streak_score = streak_score_of(r > 0 for r in reversed(rs))
        recent = min(n, p.recent_window)
        recent_wr = sum(r > 0 for r in itertools.islice(reversed(rs), recent)) / recent if recent else 0.0
        return (
            p.weight_expectancy * min(1.0, max(0.0, 0.5 + 0.5 * expectancy))
            + p.weight_profit_factor * pf_score
            + p.weight_streak * streak_score + p.weight_recent_win_rate * recent_wr
        )


def _json_array(items: list[bytes]) -> orjson.Fragment:
    """A JSON array of already serialised ``items`` (each without its brackets), in one copy.

    ``b"[" + b",".join(items) + b"]"`` copied the open votes (~3.8 MB with 50 symbols) and the
    dedupe marks (~4.2 MB) twice each at every refresh; multi-megabyte blocks get a mapping
    of their own in the engine process (``core.heap``), so each copy is also ~1,000 fresh
    pages faulted in."""
    if not items:
        return orjson.Fragment(b"[]")
    framed = [b"["]
    for item in items:
        framed += (item, b",")
    framed[-1] = b"]"
    return orjson.Fragment(b"".join(framed))


class SensorTracker:
    """Scores sensors by how their votes resolve on the following bars (see module docstring)."""

    def __init__(self, params: TrackerParams) -> None:
        self._p = params
        self._history: dict[str, _History] = {}
        self._open: dict[str, VoteBook] = {}  # by symbol: a candle touches only its own
        self._open_count = 0
        self._last_recorded: dict[tuple[str, str], int] = {}  # (key, symbol) → reading open time
        self._now_ms = 0  # market time: the latest candle close seen
        # every known key's score as of _board_ms, kept current key by key (see score_view)
        self._board: dict[str, float] = {}
        self._board_ms: int | None = None
        self._stale: set[str] = set()
        self._gauges: dict[str, Any] = {}  # key → its casino_sensor_score child
        self.dropped_open_votes = 0

    # ------------------------------------------------------------------ feeding
    def record(self, readings: Iterable[SensorReading], *, price: Decimal | float, at_ms: int) -> int:
        """Open a vote for every present, non-zero reading not recorded before; returns how many.

        ``price`` is the price at ``at_ms``, the close of the bar the player evaluated; a
        higher-timeframe reading repeated on later bars is recorded only once.
        """
        entry_price = float(price)
        if not math.isfinite(entry_price) or entry_price <= 0:
            raise ValueError(f"entry price must be positive and finite, got {price}")
        opened = 0
        history, last_recorded, books = self._history, self._last_recorded, self._open
        horizon = self._p.horizon_bars
        for r in readings:
            signal = r.signal
            # context readings feed the HTF filter; missing, flat and ill-formed ones teach nothing
            if r.context or signal is None or signal != signal or signal == 0 or not _valid_distances(r):
                continue
            key = sensor_key(r.sensor, r.timeframe)
            dedupe = (key, r.symbol)
            if last_recorded.get(dedupe, -1) >= r.open_time_ms:
                continue
            last_recorded[dedupe] = r.open_time_ms
            if key not in history:
                history[key] = _History(self._p.window)
                self._stale.add(key)
            book = books.get(r.symbol)
            if book is None:
                book = books[r.symbol] = VoteBook()
            book.add(new_open_vote(
                key, r.symbol, 1 if signal > 0 else -1, at_ms, entry_price, r.tp_fraction, r.sl_fraction,
                at_ms + horizon * r.timeframe.ms,
            ))
            opened += 1
            self._open_count += 1
        while self._open_count > self._p.max_open_votes:
            self._drop_oldest()
        return opened

    def _drop_oldest(self) -> None:
        symbol = min((b.oldest_entry_ms() or 0, s) for s, b in self._open.items() if len(b))[1]
        self._open[symbol].drop_oldest()
        self._open_count -= 1
        self.dropped_open_votes += 1
        TRACKER_VOTES.labels(outcome="dropped").inc()

    def on_candle(self, candle: Candle) -> list[Resolution]:
        """Judge the symbol's open votes on one closed candle; returns the votes it resolved."""
        if not candle.closed:
            return []
        self._now_ms = max(self._now_ms, candle.open_time_ms + candle.timeframe.ms)
        book = self._open.get(candle.symbol)
        if not book:
            return []
        end_ms = candle.open_time_ms + candle.timeframe.ms
        judged = book.judge(candle.open_time_ms, end_ms, float(candle.open), float(candle.high),
                            float(candle.low), float(candle.close))
        self._open_count -= len(judged)
        resolved = [Resolution(j.vote.key, j.vote.symbol, j.vote.entry_ms, j.outcome, j.r, j.at_ms) for j in judged]
        for res in resolved:
            self._apply(res)
        return resolved

    def _apply(self, res: Resolution) -> None:
        hist = self._history.get(res.key)
        if hist is None:
            hist = self._history[res.key] = _History(self._p.window)
        hist.append(res.r, res.won)
        self._stale.add(res.key)
        if res.won:
            hist.last_win_ms = max(hist.last_win_ms or 0, res.resolved_ms)
        _OUTCOME_COUNTERS[res.outcome].inc()

    # ------------------------------------------------------------------ scoring
    def resolved_count(self, key: str) -> int:
        hist = self._history.get(key)
        return len(hist.rs) if hist else 0

    @property
    def open_votes(self) -> int:
        return self._open_count

    @property
    def now_ms(self) -> int:
        return self._now_ms

    def score(self, key: str) -> float:
        """The sensor key's blended score in [0, 1]; 0.5 until it has enough resolved votes."""
        hist = self._history.get(key)
        if hist is None:
            return NEUTRAL_SCORE
        memo = hist.memo
        if memo is not None and memo[0] == self._now_ms:
            return memo[1]
        value = self._score(hist)
        hist.memo = (self._now_ms, value)
        return value

    def score_view(self) -> Mapping[str, float]:
        """``scores()`` as a read-only mapping, kept current instead of rebuilt.

        Every key is rescored when market time moves (recency changes), otherwise only the
        keys whose outcomes changed since the last call; so a burst of symbols closing together
        scores each key about once, and the player reads scores with a plain dict lookup.
        Equal to ``scores()`` until the tracker changes (read it at once).
        """
        if self._board_ms != self._now_ms:
            self._board = self._rescore_all()
            self._board_ms = self._now_ms
            self._stale.clear()
        elif self._stale:
            board = self._board
            for key in self._stale:
                board[key] = self.score(key)
            self._stale.clear()
        return MappingProxyType(self._board)

    def _rescore_all(self) -> dict[str, float]:
        """``score`` of every key at the current market time (~180 keys every bar: the recency
        of each one moves with the clock), without a method call and lookup per key."""
        now, score = self._now_ms, self._score
        board = {}
        for key, hist in self._history.items():
            memo = hist.memo
            if memo is None or memo[0] != now:
                memo = hist.memo = (now, score(hist))
            board[key] = memo[1]
        return board

    def _score(self, hist: _History) -> float:
        if len(hist.rs) < self._p.min_resolved_votes:
            return NEUTRAL_SCORE
        p = self._p
        if hist.partial is None:
            hist.partial = hist.blend(p)
        total = hist.partial + p.weight_recency * recency_score(hist.last_win_ms, self._now_ms)
        return min(1.0, max(0.0, total))

    def publish_metrics(self) -> None:
        """Set ``casino_sensor_score`` for every known sensor (call at snapshot/report time).

        From the score board (current anyway for the next decision) into each key's gauge
        child, looked up once: ``labels()`` costs more than the score (~180 keys a sample)."""
        gauges = self._gauges
        for key, score in self.score_view().items():
            gauge = gauges.get(key)
            if gauge is None:
                gauge = gauges[key] = SENSOR_SCORE.labels(sensor=key)
            gauge.set(score)

    def scores(self, keys: Iterable[str] | None = None) -> dict[str, float]:
        """Scores of the given keys (all known keys when None)."""
        return {k: self.score(k) for k in (self._history if keys is None else keys)}

    def performance(self, keys: Sequence[str]) -> PerformanceStats:
        """Pooled resolved outcomes of ``keys`` (e.g. a decision's winning voters) for sizing."""
        wins: list[deque[float]] = []
        losses: list[deque[float]] = []
        for key in dict.fromkeys(keys):
            hist = self._history.get(key)
            if hist is not None:
                wins.append(hist.wins)
                losses.append(hist.losses)
        n_wins = sum(map(len, wins))
        n_losses = sum(map(len, losses))
        # fsum is correctly rounded: pooling the per-key windows in any order gives the same sums
        avg_win = math.fsum(itertools.chain.from_iterable(wins)) / n_wins if n_wins else 0.0
        avg_loss = abs(math.fsum(itertools.chain.from_iterable(losses))) / n_losses if n_losses else 0.0
        return PerformanceStats(n_wins + n_losses, n_wins, n_losses, avg_win, avg_loss)

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (floats are exact through JSON's repr round trip)."""
        return {
            "version": STATE_VERSION,
            "now_ms": self._now_ms,
            "dropped_open_votes": self.dropped_open_votes,
            "history": {
                k: {"outcomes": [[r, r > 0] for r in h.rs], "last_win_ms": h.last_win_ms}
                for k, h in self._history.items()
            },
            "open": [
                [v.key, v.symbol, v.direction, v.entry_ms, v.entry_price, v.tp_fraction,
                 v.sl_fraction, v.expires_ms]
                for book in self._open.values() for v in book
            ],
            "last_recorded": [[k, s, t] for (k, s), t in self._last_recorded.items()],
        }

    def to_json(self) -> bytes:
        """``to_dict()`` as canonical JSON (``state.codec.dumps_plain``), byte for byte, built
        without the whole tree in memory at once.

        The engine persists this section after bracket transitions all session long; with many
        symbols it holds ~50 k open votes, and ``to_dict`` made a list per vote (~6 MB of small
        objects, another copy in ``encode``) only to serialise and free them: that churn left
        pymalloc arenas pinned by the long-lived objects made meanwhile (RSS growth, bench/soak.py).
        Here each symbol's votes, each key's outcomes and each run of ``_JSON_ROWS`` dedupe marks
        is serialised on its own and the pieces joined. Every float in the state is finite
        (prices and distances are checked when a vote is opened, R values follow from them), as
        ``encode`` requires.
        """
        opt = orjson.OPT_SORT_KEYS
        open_parts = [orjson.dumps([[v.key, v.symbol, v.direction, v.entry_ms, v.entry_price, v.tp_fraction,
                                     v.sl_fraction, v.expires_ms] for v in book], option=opt)[1:-1]
                      for book in self._open.values() if len(book)]
        marks = iter(self._last_recorded.items())
        mark_parts = []
        while chunk := [[k, s, t] for (k, s), t in itertools.islice(marks, _JSON_ROWS)]:
            mark_parts.append(orjson.dumps(chunk, option=opt)[1:-1])
        return orjson.dumps({
            "version": STATE_VERSION,
            "now_ms": self._now_ms,
            "dropped_open_votes": self.dropped_open_votes,
            "history": {
                k: {"outcomes": orjson.Fragment(orjson.dumps([[r, r > 0] for r in h.rs], option=opt)),
                    "last_win_ms": h.last_win_ms}
                for k, h in self._history.items()
            },
            "open": _json_array(open_parts),
            "last_recorded": _json_array(mark_parts),
        }, option=opt)

    @classmethod
    def from_windows(cls, params: TrackerParams, now_ms: int,
                     windows: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float], int | None]],
                     ) -> SensorTracker:
        """A tracker holding only resolved outcomes: per key its window's R values (oldest
        first, at most ``params.window``), the same split into the R > 0 and the others (each
        in window order: what ``_History.split`` makes of them) and its last win's time —
        what ``from_dict`` rebuilds from such a state, without the per-outcome checks,
        parsing and split (the fast replay rebuilds one per decision from arrays it has
        checked and split with numpy)."""
        tracker = cls(params)
        tracker._now_ms = int(now_ms)
        for key, (rs, wins, losses, last_win_ms) in windows.items():
            if len(wins) + len(losses) != len(rs):
                raise ValueError(f"from_windows: {key}'s wins and losses are not a split of its window")
            hist = _History(params.window)
            hist.rs.extend(rs)
            hist.wins.extend(wins)
            hist.losses.extend(losses)
            hist.last_win_ms = last_win_ms
            tracker._history[key] = hist
        return tracker

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], params: TrackerParams) -> SensorTracker:
        """Rebuild a tracker from ``to_dict``; a window smaller than the saved one keeps the newest."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported tracker state version {data.get('version')!r}")
        tracker = cls(params)
        tracker._now_ms = int(data["now_ms"])
        tracker.dropped_open_votes = int(data.get("dropped_open_votes", 0))
        for key, h in data["history"].items():
            hist = _History(params.window)
            for r, w in h["outcomes"]:
                if bool(w) != (float(r) > 0):
                    raise ValueError(f"tracker state of {key}: an outcome of R {r} marked won={w}")
                hist.rs.append(float(r))
            hist.split()
            hist.last_win_ms = None if h["last_win_ms"] is None else int(h["last_win_ms"])
            tracker._history[key] = hist
        for key, symbol, direction, entry_ms, price, tp, sl, expires in data["open"]:
            tracker._open.setdefault(str(symbol), VoteBook()).add(OpenVote(
                str(key), str(symbol), int(direction), int(entry_ms), float(price), float(tp),
                float(sl), int(expires),
            ))
            tracker._open_count += 1
        for key, symbol, t in data["last_recorded"]:
            tracker._last_recorded[(str(key), str(symbol))] = int(t)
        return tracker


def score_components(
    rs: Sequence[float], wins: Sequence[bool], *, recent_window: int, last_win_ms: int | None,
    now_ms: int,
) -> dict[str, float]:
    """The five [0, 1] components of the blend for outcomes ``rs`` (oldest first)."""
    n = len(rs)
    expectancy = math.fsum(rs) / n if n else 0.0
    gross_win = math.fsum(r for r in rs if r > 0)
    gross_loss = -math.fsum(r for r in rs if r < 0)
    pf_score = profit_factor_score(gross_win, gross_loss)
    streak_score = streak_score_of(reversed(wins))
    recent = list(wins)[-recent_window:]
    recent_wr = sum(recent) / len(recent) if recent else 0.0
    recency = recency_score(last_win_ms, now_ms)
    return {
        "expectancy": min(1.0, max(0.0, 0.5 + 0.5 * expectancy)),
        "profit_factor": pf_score,
        "streak": streak_score,
        "recent_win_rate": recent_wr,
        "recency": recency,
    }


def profit_factor_score(gross_win: float, gross_loss: float) -> float:
    """PF ≥ 1 → 0.5 + min((PF − 1)/2, 0.5); PF < 1 → PF / 2; no losses → 1.0; nothing won or lost → 0.5."""
    if gross_loss > 0:
        pf = gross_win / gross_loss
        return 0.5 + min((pf - 1.0) / 2.0, 0.5) if pf >= 1.0 else pf * 0.5
    return 1.0 if gross_win > 0 else 0.5


def streak_score_of(newest_first: Iterable[bool]) -> float:
    """+n wins → 0.5 + min(n/5, 0.5); −n losses → 0.5 − min(n/3, 0.5) (outcomes newest first)."""
    streak = 0
    for won in newest_first:
        if streak == 0:
            streak = 1 if won else -1
        elif (streak > 0) == won:
            streak += 1 if won else -1
        else:
            break
    if streak > 0:
        return 0.5 + min(streak / 5.0, 0.5)
    return 0.5 - min(-streak / 3.0, 0.5)


def recency_score(last_win_ms: int | None, now_ms: int) -> float:
    """0.95 ^ days since the last win (capped at 30 days); 0.5 for a sensor that never won."""
    if last_win_ms is None:
        return 0.5
    days = max(0.0, (now_ms - last_win_ms) / _DAY_MS)
    return 0.95 ** min(days, 30.0)


def _valid_distances(r: SensorReading) -> bool:
    return (
        math.isfinite(r.tp_fraction) and math.isfinite(r.sl_fraction)
        and 0 < r.tp_fraction < 1 and 0 < r.sl_fraction < 1
    )
