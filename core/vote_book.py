"""Open votes of one symbol, indexed by their trigger prices so a candle touches only the hit ones.

Judging every open vote on every candle costs O(open votes) per bar (40 sensors × 60-bar
horizons ≈ 2 400 per symbol); with the heaps below a candle costs O(log n) per vote it
actually resolves. Four price heaps — long TP (lowest first), long SL (highest first),
short TP (highest first), short SL (lowest first) — and one expiry heap; removal is lazy
(a heap entry whose vote is gone is skipped). Lazily removed entries behind a live one are
not skipped until it goes (a vote stopped out leaves its take-profit entry behind every live
vote with a nearer target, for as long as the market stays away — and a dropped vote leaves
all three), so the heaps are rebuilt from the live votes whenever the dead entries exceed a
quarter of the live ones (plus ``COMPACT_SLACK``): without that they grow with every vote
ever made (a leak over a long session). Not half: once the tracker's ``max_open_votes`` cap
binds (50 symbols reach it within the first hour), every new vote drops an old one, and
with dead entries allowed up to the live count the 50 books swung between ~27 and ~40 MB
at a constant 50 k open votes — a high-water mark the engine's RSS followed, reached anew
long after warm-up (bench/soak.py). A rebuild is O(entries) once per quarter of them:
still amortised O(1) per removal.

Rules (the tracker's module docstring has the why):
- a candle opening at or after a vote's ``expires_ms`` (the candles of the horizon were
  missing) expires it at that candle's open;
- SL and TP touched in one candle → loss (stop first, like the simulator);
- no touch but the candle ends at/after ``expires_ms`` → expired at its close;
- a candle that opened before the vote was made is not evidence for it.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

COMPACT_SLACK = 256  # dead heap entries tolerated beyond a quarter of the live ones before a rebuild
DEAD_FRACTION = 4  # a rebuild once dead entries exceed live entries // DEAD_FRACTION (+ slack)
ENTRIES_PER_VOTE = 3  # a take-profit, a stop and an expiry entry


class Outcome(str, Enum):
    """How a vote ended."""

    WIN = "win"
    LOSS = "loss"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class OpenVote:
    """A vote waiting for the market to judge it."""

    key: str
    symbol: str
    direction: int  # +1 long, -1 short
    entry_ms: int
    entry_price: float
    tp_fraction: float
    sl_fraction: float
    expires_ms: int  # first candle open time that is no longer judged

    @property
    def tp_price(self) -> float:
        return self.entry_price * (1 + self.direction * self.tp_fraction)

    @property
    def sl_price(self) -> float:
        return self.entry_price * (1 - self.direction * self.sl_fraction)


# OpenVote is a frozen slotted dataclass: its generated __init__ stores each field through
# object.__setattr__. The tracker opens dozens of votes per symbol per bar, so it builds them
# through the slot descriptors instead (the very same object in well under half the time).
_NEW = object.__new__
_FIELDS = ("key", "symbol", "direction", "entry_ms", "entry_price", "tp_fraction", "sl_fraction", "expires_ms")
if tuple(f.name for f in dataclasses.fields(OpenVote)) != _FIELDS:  # fail loudly, never half-built
    raise RuntimeError("OpenVote's fields changed: update core.vote_book.new_open_vote")
_SETTERS = tuple(getattr(OpenVote, name).__set__ for name in _FIELDS)


def new_open_vote(key: str, symbol: str, direction: int, entry_ms: int, entry_price: float, tp_fraction: float,
                  sl_fraction: float, expires_ms: int) -> OpenVote:
    """``OpenVote(...)`` with the same fields, built faster (see above)."""
    s_key, s_symbol, s_direction, s_entry_ms, s_price, s_tp, s_sl, s_expires = _SETTERS
    vote = _NEW(OpenVote)
    s_key(vote, key)
    s_symbol(vote, symbol)
    s_direction(vote, direction)
    s_entry_ms(vote, entry_ms)
    s_price(vote, entry_price)
    s_tp(vote, tp_fraction)
    s_sl(vote, sl_fraction)
    s_expires(vote, expires_ms)
    return vote


@dataclass(frozen=True, slots=True)
class Judged:
    """One vote resolved by a candle."""

    vote: OpenVote
    outcome: Outcome
    r: float  # result in multiples of the vote's stop distance
    at_ms: int


class VoteBook:
    """One symbol's open votes (insertion order kept, so the oldest can be dropped)."""

    def __init__(self, *, compact_slack: int = COMPACT_SLACK) -> None:
        self._compact_slack = compact_slack
        self._votes: dict[int, OpenVote] = {}
        self._seq = itertools.count()
        self._long_tp: list[tuple[float, int]] = []  # (tp, seq): hit when tp <= high
        self._long_sl: list[tuple[float, int]] = []  # (-sl, seq): hit when sl >= low
        self._short_tp: list[tuple[float, int]] = []  # (-tp, seq): hit when tp >= low
        self._short_sl: list[tuple[float, int]] = []  # (sl, seq): hit when sl <= high
        self._expiry: list[tuple[int, int]] = []  # (expires_ms, seq)

    def __len__(self) -> int:
        return len(self._votes)

    def __iter__(self) -> Iterator[OpenVote]:
        return iter(self._votes.values())

    def add(self, vote: OpenVote) -> None:
        seq = next(self._seq)
        self._votes[seq] = vote
        if vote.direction > 0:
            heapq.heappush(self._long_tp, (vote.tp_price, seq))
            heapq.heappush(self._long_sl, (-vote.sl_price, seq))
        else:
            heapq.heappush(self._short_tp, (-vote.tp_price, seq))
            heapq.heappush(self._short_sl, (vote.sl_price, seq))
        heapq.heappush(self._expiry, (vote.expires_ms, seq))

    def oldest_entry_ms(self) -> int | None:
        for vote in self._votes.values():
            return vote.entry_ms
        return None

    def drop_oldest(self) -> OpenVote:
        seq = next(iter(self._votes))
        vote = self._votes.pop(seq)
        self._maybe_compact()
        return vote

    @property
    def heap_entries(self) -> int:
        """Entries in all heaps, live and not yet removed (memory held by the book)."""
        return (len(self._long_tp) + len(self._long_sl) + len(self._short_tp) + len(self._short_sl)
                + len(self._expiry))

    def _maybe_compact(self) -> None:
        """Rebuild the heaps from the live votes once dead entries exceed a quarter of the live
        ones (amortised O(1))."""
        live = ENTRIES_PER_VOTE * len(self._votes)
        if self.heap_entries - live <= live // DEAD_FRACTION + self._compact_slack:
            return
        votes = self._votes
        for heap in (self._long_tp, self._long_sl, self._short_tp, self._short_sl, self._expiry):
            heap[:] = [entry for entry in heap if entry[1] in votes]
            heapq.heapify(heap)

    def judge(self, open_ms: int, end_ms: int, o: float, h: float, low: float, c: float) -> list[Judged]:
        """Resolve every vote this candle decides; results in the order the votes were made."""
        hits: dict[int, tuple[Outcome, float, int]] = {}
        deferred: list[tuple[list[tuple[float, int]], tuple[float, int]]] = []

        def take(heap: list, hit: object, outcome: Outcome) -> None:  # type: ignore[type-arg]
            while heap:
                top = heap[0]
                vote = self._votes.get(top[1])
                if vote is None or top[1] in hits:
                    heapq.heappop(heap)
                    continue
                if not hit(top[0]):  # type: ignore[operator]
                    return
                heapq.heappop(heap)
                if vote.entry_ms > open_ms:  # made after this candle opened: not evidence
                    deferred.append((heap, top))
                    continue
                r = -1.0 if outcome is Outcome.LOSS else vote.tp_fraction / vote.sl_fraction
                hits[top[1]] = (outcome, r, end_ms)

        # 1. The horizon ended inside a gap: expire at the price the market reopened at.
        while self._expiry and self._expiry[0][0] <= open_ms:
            _, seq = heapq.heappop(self._expiry)
            vote = self._votes.get(seq)
            if vote is not None:
                hits[seq] = (Outcome.EXPIRED, _r_at(vote, o), vote.expires_ms)
        # 2. Stops first (pessimistic same-bar rule), then take-profits.
        take(self._long_sl, lambda neg_sl: -neg_sl >= low, Outcome.LOSS)
        take(self._short_sl, lambda sl: sl <= h, Outcome.LOSS)
        take(self._long_tp, lambda tp: tp <= h, Outcome.WIN)
        take(self._short_tp, lambda neg_tp: -neg_tp >= low, Outcome.WIN)
        # 3. Untouched votes whose horizon ends with this candle expire at its close.
        not_yet: list[tuple[int, int]] = []
        while self._expiry and self._expiry[0][0] <= end_ms:
            expiry = heapq.heappop(self._expiry)
            vote = self._votes.get(expiry[1])
            if vote is None or expiry[1] in hits:
                continue
            if vote.entry_ms > open_ms:  # only when candles are longer than the horizon
                not_yet.append(expiry)
                continue
            hits[expiry[1]] = (Outcome.EXPIRED, _r_at(vote, c), end_ms)
        for heap, entry in deferred:
            heapq.heappush(heap, entry)
        for expiry in not_yet:
            heapq.heappush(self._expiry, expiry)
        out = []
        for seq in sorted(hits):
            vote = self._votes.pop(seq)
            outcome, r, at_ms = hits[seq]
            out.append(Judged(vote, outcome, r, at_ms))
        self._maybe_compact()
        return out


def _r_at(vote: OpenVote, price: float) -> float:
    return vote.direction * (price - vote.entry_price) / vote.entry_price / vote.sl_fraction
