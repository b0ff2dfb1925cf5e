"""The live brackets of a session: every change journaled first, logged, and measured.

``BracketBook.apply(bracket_id, event)`` computes the next record with the pure
``bracket.transition``, hands a ``TransitionRecord`` to the sink (``journal_sink(journal)``
writes it to the state journal, fsynced) and only then makes it current — so the journal is
never behind memory. It also keeps the protection metrics: ``casino_unprotected_seconds``
(a position's first fill, or the loss of its stop, → a stop acknowledged, on the session clock),
``casino_time_to_protect_seconds`` (first entry fill applied → first stop acknowledged, in real
time: a paper session's clock runs N× faster, so only real time tells how long a position
really waited for its stop) and ``casino_positions_unprotected`` (brackets holding a position
without an acknowledged stop). ``on_protected`` hears each time-to-protect sample (the report).

``to_document``/``from_document`` give the snapshot section (``state.recovery.BRACKETS_KEY``):
bracket id → record encoded by ``state.codec``; recovery overlays journaled transitions on it
in the same shape, so ``from_document(recovered.brackets)`` restores the book.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import metrics
from core.clock import LiveClock
from croupier.bracket import Bracket, BracketEvent, BracketState, IllegalTransition, transition
from state import codec
from state.journal import Journal

log = logging.getLogger(__name__)

_REAL_TIME = LiveClock()


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One applied change: what it was, and the bracket after it."""

    bracket_id: str
    from_state: BracketState | None  # None when the bracket was created
    to_state: BracketState
    event: BracketEvent | None
    bracket: Bracket


TransitionSink = Callable[[TransitionRecord], None]


def encode_transition(record: TransitionRecord) -> dict[str, Any]:
    """The journal payload of a transition (what ``state.recovery`` replays)."""
    return {
        "bracket_id": record.bracket_id,
        "from": record.from_state.name if record.from_state else None,
        "to": record.to_state.name,
        "event": codec.encode(record.event) if record.event else None,
        "bracket": codec.encode(record.bracket),
    }


def journal_sink(journal: Journal) -> TransitionSink:
    """A sink that writes each transition to ``journal`` (fsynced) before it takes effect."""

    def sink(record: TransitionRecord) -> None:
        journal.record_transition(encode_transition(record))

    return sink


class BracketBook:
    """Brackets by id; the only writer of bracket state."""

    def __init__(self, sink: TransitionSink | None = None, *, on_change: Callable[[], None] | None = None) -> None:
        self._brackets: dict[str, Bracket] = {}
        self._sink = sink
        self._on_change = on_change
        self._first_fill_s: dict[str, float] = {}  # bracket id → real time its first fill was applied
        # bracket id → (the bracket as last encoded, its encoding): a Bracket is immutable, so a
        # snapshot re-encodes only the brackets that changed since the previous one
        self._encoded: dict[str, tuple[Bracket, codec.Encoded]] = {}
        # symbol → its active brackets' ids, in the book's order: the engine asks for every symbol
        # on every decision, and a scan of the book (up to MAX_KEPT_TERMINAL finished brackets
        # too) per symbol was ~1 ms a decision with 50 symbols
        self._active_ids: dict[str, dict[str, None]] = {}
        self.on_protected: Callable[[str, float], None] | None = None  # (bracket id, real seconds)

    def __contains__(self, bracket_id: str) -> bool:
        return bracket_id in self._brackets

    def get(self, bracket_id: str) -> Bracket:
        try:
            return self._brackets[bracket_id]
        except KeyError:
            raise KeyError(f"unknown bracket {bracket_id!r}") from None

    def all(self) -> list[Bracket]:
        return list(self._brackets.values())

    def active(self) -> list[Bracket]:
        return [b for b in self._brackets.values() if not b.state.is_terminal]

    def active_on(self, symbol: str) -> Bracket | None:
        """The first (oldest) active bracket on ``symbol``, as the first of ``active()`` on it."""
        ids = self._active_ids.get(symbol)
        return self._brackets[next(iter(ids))] if ids else None

    def _index(self, bracket: Bracket) -> None:
        if bracket.state.is_terminal:
            ids = self._active_ids.get(bracket.symbol)
            if ids is not None:
                ids.pop(bracket.id, None)
                if not ids:
                    del self._active_ids[bracket.symbol]
        else:
            self._active_ids.setdefault(bracket.symbol, {})[bracket.id] = None

    def find_by_client_id(self, client_id: str) -> Bracket | None:
        """The bracket one of whose legs uses ``client_id``."""
        for bracket in self._brackets.values():
            if client_id.startswith(bracket.id) and bracket.leg_by_client_id(client_id) is not None:
                return bracket
        return None

    def open(self, bracket: Bracket) -> Bracket:
        """Register a new PLANNED bracket (journaled like a transition)."""
        if bracket.state is not BracketState.PLANNED or bracket.legs or bracket.version:
            raise IllegalTransition(f"bracket {bracket.id}: only a fresh PLANNED bracket can be opened")
        if bracket.id in self._brackets:
            raise IllegalTransition(f"bracket {bracket.id} already exists")
        self._commit(TransitionRecord(bracket.id, None, BracketState.PLANNED, None, bracket))
        return bracket

    def apply(self, bracket_id: str, event: BracketEvent) -> Bracket:
        """Apply ``event``; raises ``IllegalTransition`` (nothing journaled, nothing changed)."""
        before = self.get(bracket_id)
        try:
            after = transition(before, event)
        except IllegalTransition as exc:
            log.error("%s", exc, extra={"bracket_id": bracket_id, "symbol": before.symbol})
            raise
        if after is before:  # a duplicate acknowledgement: nothing to journal
            log.debug("bracket %s: duplicate %s ignored", bracket_id, event.kind.value,
                      extra={"bracket_id": bracket_id, "symbol": before.symbol})
            return before
        self._commit(TransitionRecord(bracket_id, before.state, after.state, event, after))
        self._measure(before, after, event)
        return after

    def _commit(self, record: TransitionRecord) -> None:
        if self._sink is not None:
            self._sink(record)  # journal first: memory is never ahead of the journal
        self._brackets[record.bracket_id] = record.bracket
        self._index(record.bracket)
        log.info(
            "bracket %s: %s -[%s]-> %s",
            record.bracket_id,
            record.from_state.value if record.from_state else "∅",
            record.event.kind.value if record.event else "OPEN",
            record.to_state.value,
            extra={"bracket_id": record.bracket_id, "symbol": record.bracket.symbol},
        )
        if self._on_change is not None:
            self._on_change()

    def _measure(self, before: Bracket, after: Bracket, event: BracketEvent) -> None:
        if before.first_fill_ms is None and after.first_fill_ms is not None:
            self._first_fill_s[after.id] = _REAL_TIME.monotonic()
        if before.sl_acked_ms is None and after.sl_acked_ms is not None:
            filled = self._first_fill_s.pop(after.id, None)
            if filled is not None:
                seconds = _REAL_TIME.monotonic() - filled
                metrics.TIME_TO_PROTECT_SECONDS.observe(seconds)
                if self.on_protected is not None:
                    self.on_protected(after.id, seconds)
        if after.state.is_terminal:
            self._first_fill_s.pop(after.id, None)  # never protected (flattened, failed): nothing to time
        if before.unprotected_since_ms is not None and after.unprotected_since_ms is None and after.active_stop:
            metrics.UNPROTECTED_SECONDS.observe(max(0, event.time_ms - before.unprotected_since_ms) / 1000)
        if after.state.is_terminal and not before.state.is_terminal:
            metrics.BRACKETS.labels(state=after.state.value).inc()
        metrics.POSITIONS_UNPROTECTED.set(self.unprotected_count())

    def unprotected_count(self) -> int:
        """Brackets holding a position without an acknowledged live stop."""
        return sum(1 for b in self._brackets.values() if b.open_qty > 0 and b.active_stop is None)

    def drop_terminal(self) -> int:
        """Forget finished brackets (after they reached a snapshot); returns how many."""
        done = [k for k, b in self._brackets.items() if b.state.is_terminal]
        for key in done:
            del self._brackets[key]
            self._first_fill_s.pop(key, None)
            self._encoded.pop(key, None)
        return len(done)

    # -- snapshots ----------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """Every bracket, encoded (the same bytes as ``codec.encode`` of each, once per version)."""
        document = {}
        for key, b in self._brackets.items():
            cached = self._encoded.get(key)
            if cached is None or cached[0] is not b:
                cached = self._encoded[key] = (b, codec.Encoded(b))
            document[key] = cached[1]
        return document

    @classmethod
    def from_document(
        cls,
        document: dict[str, Any],
        sink: TransitionSink | None = None,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> BracketBook:
        book = cls(sink, on_change=on_change)
        for key, data in document.items():
            bracket = codec.decode(Bracket, data, f"$.brackets.{key}")
            if bracket.id != key:
                raise IllegalTransition(f"bracket stored under {key!r} has id {bracket.id!r}")
            book._brackets[key] = bracket
            book._index(bracket)
        return book

