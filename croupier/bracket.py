"""The bracket (entry + stop-loss + take-profit) as a pure state machine with a transition table.

A ``Bracket`` is a frozen record; ``transition(bracket, event)`` returns the next record or
raises ``IllegalTransition``. Nothing else changes a bracket, so every change is one row of
``TRANSITIONS`` plus a guard (what the event's data must satisfy) and an effect (which fields
it updates), and every result is checked against the invariants before it is returned.

States (``BracketState``) along the usual path::

    PLANNED → ENTRY_SENT → ENTRY_PARTIAL → ENTRY_FILLED    entry filling; protection not asked yet
                  │              └──────┬───────┘
                  ▼                     ▼  SL (and TP) submitted on the FIRST fill
              CANCELLED            PROTECTING              no acknowledged stop: unprotected
          (entry ended unfilled)        ▼  SL acknowledged           ▲ SL_LOST
                                   PROTECTED ⇄ RESIZING    further fills: the new stop goes first
                                        ▼  TP or SL fills
                                     EXITING → CLOSED      sibling cancelled, flat, nothing live

    any state holding a position → FLATTENING → CLOSED (exit policy) or FAILED (protection failed)

Fills never change the protection phase by themselves: after a further entry fill the
bracket stays PROTECTED and reports ``needs_resize``; the OCO manager then submits a new stop
(SL_SUBMITTED: PROTECTED → RESIZING) *before* cancelling the old one, and the ack of the new
one brings it back to PROTECTED (or RESIZE_ABANDONED does, when the replacement failed and the
old stop still stands). A protected bracket always has an acknowledged, live stop (an
invariant): losing it must be reported as SL_LOST, which moves it back to PROTECTING. A
duplicate acknowledgement (REST reply and stream event both) is a no-op: ``transition`` returns
the same record and nothing is journaled.

``BracketBook`` holds the live brackets, hands every transition to a sink (the journal) before
it takes effect, logs it with the bracket id, and keeps the unprotected-time metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum

from core.types import ZERO, Side
from croupier.ids import Leg, bracket_id, client_id

log = logging.getLogger(__name__)


class BracketState(str, Enum):
    PLANNED = "PLANNED"  # decided, nothing sent
    ENTRY_SENT = "ENTRY_SENT"  # entry working, nothing filled
    ENTRY_PARTIAL = "ENTRY_PARTIAL"  # partly filled, entry still working, no protection asked yet
    ENTRY_FILLED = "ENTRY_FILLED"  # entry done (fully, or partly then ended), no protection asked yet
    PROTECTING = "PROTECTING"  # protection requested, no stop acknowledged: UNPROTECTED
    PROTECTED = "PROTECTED"  # a live acknowledged stop exists
    RESIZING = "RESIZING"  # a replacement stop is on its way (the old one may still be live)
    EXITING = "EXITING"  # a TP/SL (or an outside order) is closing the position
    FLATTENING = "FLATTENING"  # reduce-only MARKET close in progress
    CLOSED = "CLOSED"  # flat, nothing live
    CANCELLED = "CANCELLED"  # entry ended without any fill
    FAILED = "FAILED"  # abandoned with a reason; flat, nothing live

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({BracketState.CLOSED, BracketState.CANCELLED, BracketState.FAILED})


class EventKind(str, Enum):
    ENTRY_SUBMITTED = "ENTRY_SUBMITTED"  # the entry request is journaled and leaving
    ENTRY_ACKED = "ENTRY_ACKED"  # the exchange accepted the entry (its id)
    ENTRY_PARTIAL_FILL = "ENTRY_PARTIAL_FILL"  # a fill that leaves some of the entry unfilled
    ENTRY_FILLED = "ENTRY_FILLED"  # the fill that completes the requested quantity
    ENTRY_ENDED = "ENTRY_ENDED"  # cancelled / expired / rejected: the entry fills no more
    SL_SUBMITTED = "SL_SUBMITTED"
    TP_SUBMITTED = "TP_SUBMITTED"
    SL_ACKED = "SL_ACKED"
    TP_ACKED = "TP_ACKED"
    LEG_REJECTED = "LEG_REJECTED"  # a protection/flatten leg refused definitively
    LEG_CANCELLED = "LEG_CANCELLED"  # a leg ended unfilled on purpose (sibling, replaced stop)
    SL_LOST = "SL_LOST"  # the live stop vanished (expired, cancelled by someone else)
    RESIZE_ABANDONED = "RESIZE_ABANDONED"  # the replacement stop failed; the old one still covers
    EXIT_FILL = "EXIT_FILL"  # a fill reducing the position (TP, SL, flatten, or an outside order)
    FLATTEN_SUBMITTED = "FLATTEN_SUBMITTED"  # reduce-only MARKET sent (``failed``: protection failed)
    POSITION_FLAT = "POSITION_FLAT"  # flat and nothing live: done
    FAIL = "FAIL"  # give up with a reason (only when flat and nothing live)


class LegStatus(str, Enum):
    SENT = "SENT"
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_live(self) -> bool:
        return self in (LegStatus.SENT, LegStatus.OPEN)


class IllegalTransition(ValueError):
    """An event that the bracket's state or data does not allow; the bracket is unchanged."""


@dataclass(frozen=True, slots=True)
class LegRecord:
    """One order of the bracket. ``quantity`` None means closePosition (covers any size)."""

    leg: Leg
    client_id: str
    attempt: int
    status: LegStatus = LegStatus.SENT
    quantity: Decimal | None = None
    price: Decimal | None = None  # trigger price (algo) or limit price
    algo: bool = False
    exchange_id: int | None = None
    filled_qty: Decimal = ZERO
    reason: str = ""
    sent_ms: int = 0
    acked_ms: int = 0


@dataclass(frozen=True, slots=True)
class BracketEvent:
    """Something that happened to a bracket; which fields matter depends on ``kind``."""

    kind: EventKind
    time_ms: int
    client_id: str = ""  # the leg it concerns
    exchange_id: int | None = None
    quantity: Decimal | None = None  # fill quantity, or a submitted leg's size (None = closePosition)
    price: Decimal | None = None  # fill price, or a submitted leg's trigger/limit price
    algo: bool = False
    final: bool = False  # EXIT_FILL: this fill completes the leg's order
    failed: bool = False  # FLATTEN_SUBMITTED: flattening because protection failed
    reason: str = ""
    # fills: the exchange's own time of the trade (ORDER_TRADE_UPDATE ``T``, a userTrade's
    # ``time``, an order's ``updateTime``); None when the venue did not say. ``time_ms`` is
    # when we learned of it, on our clock.
    fill_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Bracket:
    """Everything the OCO manager needs to know about one bracket."""

    tag: str
    symbol: str
    side: Side
    number: int
    requested_qty: Decimal
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    state: BracketState = BracketState.PLANNED
    legs: tuple[LegRecord, ...] = ()
    entry_open: bool = False
    entry_filled_qty: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_filled_qty: Decimal = ZERO
    exit_notional: Decimal = ZERO
    created_ms: int = 0
    first_fill_ms: int | None = None
    sl_acked_ms: int | None = None
    unprotected_since_ms: int | None = None
    closed_ms: int | None = None
    # the exchange's times of the first entry fill and of the latest exit fill (what a trade
    # report shows); None when no fill carried one (then first_fill_ms / closed_ms, our clock)
    entry_fill_time_ms: int | None = None
    exit_fill_time_ms: int | None = None
    close_reason: str = ""
    failure_reason: str = ""
    version: int = 0

    # -- identity and ids ---------------------------------------------------------------

    @property
    def id(self) -> str:
        return bracket_id(self.tag, self.symbol, self.number)

    def next_client_id(self, leg: Leg) -> str:
        """The client id the next order of ``leg`` must use (attempt = legs of that kind so far)."""
        attempt = sum(1 for r in self.legs if r.leg is leg)
        return client_id(self.tag, self.symbol, self.number, leg, attempt)

    def leg_by_client_id(self, value: str) -> LegRecord | None:
        return next((r for r in self.legs if r.client_id == value), None)

    def live_legs(self, leg: Leg | None = None) -> list[LegRecord]:
        return [r for r in self.legs if r.status.is_live and (leg is None or r.leg is leg)]

    @property
    def entry_leg(self) -> LegRecord | None:
        return next((r for r in self.legs if r.leg is Leg.ENTRY), None)

    @property
    def active_stop(self) -> LegRecord | None:
        """The newest acknowledged live stop (None: the position is not protected)."""
        stops = [r for r in self.legs if r.leg is Leg.STOP_LOSS and r.status is LegStatus.OPEN]
        return stops[-1] if stops else None

    # -- quantities -----------------------------------------------------------------------

    @property
    def open_qty(self) -> Decimal:
        """Position quantity this bracket holds (unsigned; negative only if exits overshot)."""
        return self.entry_filled_qty - self.exit_filled_qty

    @property
    def avg_entry_price(self) -> Decimal | None:
        return self.entry_notional / self.entry_filled_qty if self.entry_filled_qty else None

    @property
    def avg_exit_price(self) -> Decimal | None:
        return self.exit_notional / self.exit_filled_qty if self.exit_filled_qty else None

    @property
    def exit_side(self) -> Side:
        return self.side.opposite

    @property
    def needs_protection(self) -> bool:
        """A position exists and no live stop (acknowledged or on its way) covers it."""
        return self.open_qty > 0 and not self.live_legs(Leg.STOP_LOSS) and not self.state.is_terminal

    @property
    def needs_resize(self) -> bool:
        """The live protection covers less than the open quantity (after a further fill)."""
        if self.state is not BracketState.PROTECTED or self.open_qty <= 0:
            return False
        for leg in (Leg.STOP_LOSS, Leg.TAKE_PROFIT):
            live = self.live_legs(leg)
            if live and all(r.quantity is not None and r.quantity < self.open_qty for r in live):
                return True
        return False

    @property
    def unprotected_ms(self) -> int | None:
        """First fill → first stop acknowledged (None until both happened)."""
        if self.first_fill_ms is None or self.sl_acked_ms is None:
            return None
        return self.sl_acked_ms - self.first_fill_ms


# ------------------------------------------------------------------------ the table

S = BracketState
K = EventKind
_OPEN_POSITION_STATES = (S.PROTECTING, S.PROTECTED, S.RESIZING, S.EXITING, S.FLATTENING)

TRANSITIONS: dict[tuple[BracketState, EventKind], BracketState] = {
    (S.PLANNED, K.ENTRY_SUBMITTED): S.ENTRY_SENT,
    (S.PLANNED, K.ENTRY_ENDED): S.CANCELLED,  # never sent (refused before leaving)
    (S.PLANNED, K.FAIL): S.FAILED,
    (S.ENTRY_SENT, K.ENTRY_PARTIAL_FILL): S.ENTRY_PARTIAL,
    (S.ENTRY_SENT, K.ENTRY_FILLED): S.ENTRY_FILLED,
    (S.ENTRY_SENT, K.ENTRY_ENDED): S.CANCELLED,
    (S.ENTRY_SENT, K.FAIL): S.FAILED,
    (S.ENTRY_PARTIAL, K.ENTRY_PARTIAL_FILL): S.ENTRY_PARTIAL,
    (S.ENTRY_PARTIAL, K.ENTRY_FILLED): S.ENTRY_FILLED,
    (S.ENTRY_PARTIAL, K.ENTRY_ENDED): S.ENTRY_FILLED,
    (S.ENTRY_PARTIAL, K.SL_SUBMITTED): S.PROTECTING,
    (S.ENTRY_PARTIAL, K.TP_SUBMITTED): S.PROTECTING,
    (S.ENTRY_PARTIAL, K.FLATTEN_SUBMITTED): S.FLATTENING,
    (S.ENTRY_FILLED, K.SL_SUBMITTED): S.PROTECTING,
    (S.ENTRY_FILLED, K.TP_SUBMITTED): S.PROTECTING,
    (S.ENTRY_FILLED, K.FLATTEN_SUBMITTED): S.FLATTENING,
    (S.PROTECTING, K.SL_SUBMITTED): S.PROTECTING,  # another attempt
    (S.PROTECTING, K.TP_SUBMITTED): S.PROTECTING,
    (S.PROTECTING, K.SL_ACKED): S.PROTECTED,
    (S.PROTECTING, K.SL_LOST): S.PROTECTING,
    (S.PROTECTING, K.EXIT_FILL): S.EXITING,  # TP filled before the stop was acknowledged
    (S.PROTECTED, K.SL_SUBMITTED): S.RESIZING,  # replacement stop first, old one cancelled after
    (S.PROTECTED, K.TP_SUBMITTED): S.PROTECTED,  # the stop still covers everything
    (S.PROTECTED, K.SL_ACKED): S.PROTECTED,  # a late ack of an older attempt
    (S.PROTECTED, K.SL_LOST): S.PROTECTING,
    (S.PROTECTED, K.EXIT_FILL): S.EXITING,
    (S.RESIZING, K.SL_SUBMITTED): S.RESIZING,
    (S.RESIZING, K.TP_SUBMITTED): S.RESIZING,
    (S.RESIZING, K.SL_ACKED): S.PROTECTED,
    (S.RESIZING, K.SL_LOST): S.RESIZING,
    (S.RESIZING, K.RESIZE_ABANDONED): S.PROTECTED,
    (S.RESIZING, K.EXIT_FILL): S.EXITING,
    (S.EXITING, K.EXIT_FILL): S.EXITING,
    (S.EXITING, K.SL_ACKED): S.EXITING,
    (S.EXITING, K.SL_LOST): S.EXITING,
    (S.EXITING, K.POSITION_FLAT): S.CLOSED,
    (S.FLATTENING, K.EXIT_FILL): S.FLATTENING,
    (S.FLATTENING, K.SL_ACKED): S.FLATTENING,
    (S.FLATTENING, K.SL_LOST): S.FLATTENING,
    (S.FLATTENING, K.FLATTEN_SUBMITTED): S.FLATTENING,  # another attempt / more to close
    (S.FLATTENING, K.POSITION_FLAT): S.CLOSED,
    (S.FLATTENING, K.FAIL): S.FAILED,
}
# Events that never move the phase once a position may exist: record data, keep the state.
for _state in _OPEN_POSITION_STATES:
    for _kind in (K.ENTRY_ACKED, K.ENTRY_PARTIAL_FILL, K.ENTRY_FILLED, K.ENTRY_ENDED, K.TP_ACKED,
                  K.LEG_REJECTED, K.LEG_CANCELLED):
        TRANSITIONS[(_state, _kind)] = _state
    TRANSITIONS[(_state, K.FLATTEN_SUBMITTED)] = S.FLATTENING
    TRANSITIONS[(_state, K.FAIL)] = S.FAILED  # guarded: only once flat and nothing live
for _state in (S.ENTRY_SENT, S.ENTRY_PARTIAL, S.ENTRY_FILLED, S.CANCELLED):
    TRANSITIONS[(_state, K.ENTRY_ACKED)] = _state  # the REST reply may trail the stream


# --------------------------------------------------------------------- guards/effects

Guard = Callable[[Bracket, BracketEvent], str | None]


def _fill_data(b: Bracket, e: BracketEvent) -> str | None:
    if e.quantity is None or e.quantity <= 0 or e.price is None or e.price <= 0:
        return "a fill needs a positive quantity and price"
    return None


def _entry_fill(b: Bracket, e: BracketEvent) -> str | None:
    if (problem := _fill_data(b, e)) or (problem := _is_entry(b, e)):
        return problem
    assert e.quantity is not None
    total = b.entry_filled_qty + e.quantity
    if e.kind is K.ENTRY_FILLED and total != b.requested_qty:
        return f"ENTRY_FILLED must complete the entry: {total} filled of {b.requested_qty}"
    if e.kind is K.ENTRY_PARTIAL_FILL and total >= b.requested_qty:
        return f"a partial fill must leave some unfilled: {total} of {b.requested_qty}"
    return None


def _is_entry(b: Bracket, e: BracketEvent) -> str | None:
    entry = b.entry_leg
    if entry is None or e.client_id != entry.client_id:
        return f"{e.client_id!r} is not this bracket's entry"
    if e.kind in (K.ENTRY_PARTIAL_FILL, K.ENTRY_FILLED, K.ENTRY_ENDED) and not b.entry_open:
        return "the entry has already ended"
    return None


def _submission(leg: Leg) -> Guard:
    def guard(b: Bracket, e: BracketEvent) -> str | None:
        if e.client_id != b.next_client_id(leg):
            return f"{leg.name} must use client id {b.next_client_id(leg)}, got {e.client_id!r}"
        if e.quantity is not None and e.quantity <= 0:
            return "a submitted leg's quantity must be positive (or None for closePosition)"
        if leg is Leg.ENTRY:
            if e.quantity != b.requested_qty:
                return f"the entry must ask for the requested {b.requested_qty}, not {e.quantity}"
        elif b.open_qty <= 0:
            return f"nothing to {'flatten' if leg is Leg.FLATTEN else 'protect'}: open quantity {b.open_qty}"
        return None

    return guard


def _live_leg(*legs: Leg) -> Guard:
    def guard(b: Bracket, e: BracketEvent) -> str | None:
        record = b.leg_by_client_id(e.client_id)
        if record is None or record.leg not in legs:
            return f"{e.client_id!r} is not a {'/'.join(x.name for x in legs)} leg of this bracket"
        if not record.status.is_live:
            return f"leg {e.client_id} is already {record.status.value}"
        return None

    return guard


def _acked_leg(*legs: Leg) -> Guard:
    live = _live_leg(*legs)

    def guard(b: Bracket, e: BracketEvent) -> str | None:
        if problem := live(b, e):
            return problem
        record = b.leg_by_client_id(e.client_id)
        assert record is not None
        if record.status is not LegStatus.SENT:
            return f"leg {e.client_id} was already acknowledged as {record.exchange_id}, now {e.exchange_id}"
        return None

    return guard


def _resize_abandoned(b: Bracket, e: BracketEvent) -> str | None:
    if b.active_stop is None:
        return "no acknowledged stop to fall back on"
    if any(r.status is LegStatus.SENT for r in b.live_legs(Leg.STOP_LOSS)):
        return "a replacement stop is still on its way: wait for its outcome"
    return None


def is_duplicate_ack(b: Bracket, e: BracketEvent) -> bool:
    """An acknowledgement already applied (the REST reply and the stream both report it)."""
    if e.kind not in (K.ENTRY_ACKED, K.SL_ACKED, K.TP_ACKED):
        return False
    record = b.leg_by_client_id(e.client_id)
    if record is None or record.exchange_id is None:
        return False
    if e.kind is not K.ENTRY_ACKED and record.status is LegStatus.SENT:
        return False
    return e.exchange_id in (None, record.exchange_id)


def _cancel_guard(b: Bracket, e: BracketEvent) -> str | None:
    if problem := _live_leg(Leg.STOP_LOSS, Leg.TAKE_PROFIT, Leg.FLATTEN)(b, e):
        return problem
    record = b.leg_by_client_id(e.client_id)
    assert record is not None
    others = [r for r in b.live_legs(Leg.STOP_LOSS) if r.client_id != e.client_id]
    if record.leg is Leg.STOP_LOSS and b.state is S.PROTECTED and b.open_qty > 0 and not others:
        return "cancelling the only live stop of an open position: report SL_LOST (or flatten first)"
    return None


def _exit_fill(b: Bracket, e: BracketEvent) -> str | None:
    if problem := _fill_data(b, e):
        return problem
    record = b.leg_by_client_id(e.client_id)
    if record is None:
        return None if e.reason else "a fill from an order outside the bracket needs a reason"
    if record.leg is Leg.ENTRY:
        return "entry fills are ENTRY_PARTIAL_FILL / ENTRY_FILLED"
    if not record.status.is_live:
        return f"leg {e.client_id} is already {record.status.value}"
    return None


def _flat(b: Bracket, e: BracketEvent) -> str | None:
    if b.open_qty != 0 or b.entry_open or b.live_legs():
        return f"not flat: open {b.open_qty}, entry open {b.entry_open}, live legs {len(b.live_legs())}"
    if e.kind is K.POSITION_FLAT and b.failure_reason:
        return f"protection failed ({b.failure_reason}): finish with FAIL"
    if e.kind is K.FAIL and not e.reason and not b.failure_reason:
        return "FAIL needs a reason"
    return None


def _no_check(b: Bracket, e: BracketEvent) -> str | None:
    return None


GUARDS: dict[EventKind, Guard] = {
    K.ENTRY_SUBMITTED: _submission(Leg.ENTRY),
    K.ENTRY_ACKED: _is_entry,
    K.ENTRY_PARTIAL_FILL: _entry_fill,
    K.ENTRY_FILLED: _entry_fill,
    K.ENTRY_ENDED: lambda b, e: None if b.state is S.PLANNED else _is_entry(b, e),
    K.SL_SUBMITTED: _submission(Leg.STOP_LOSS),
    K.TP_SUBMITTED: _submission(Leg.TAKE_PROFIT),
    K.SL_ACKED: _acked_leg(Leg.STOP_LOSS),
    K.TP_ACKED: _acked_leg(Leg.TAKE_PROFIT),
    K.LEG_REJECTED: _live_leg(Leg.STOP_LOSS, Leg.TAKE_PROFIT, Leg.FLATTEN),
    K.LEG_CANCELLED: _cancel_guard,
    K.SL_LOST: _live_leg(Leg.STOP_LOSS),
    K.RESIZE_ABANDONED: _resize_abandoned,
    K.EXIT_FILL: _exit_fill,
    K.FLATTEN_SUBMITTED: _submission(Leg.FLATTEN),
    K.POSITION_FLAT: _flat,
    K.FAIL: _flat,
}


def _set_leg(b: Bracket, cid: str, **changes: object) -> tuple[LegRecord, ...]:
    return tuple(replace(r, **changes) if r.client_id == cid else r for r in b.legs)  # type: ignore[arg-type]


def _add_leg(b: Bracket, e: BracketEvent, leg: Leg) -> Bracket:
    attempt = sum(1 for r in b.legs if r.leg is leg)
    record = LegRecord(leg, e.client_id, attempt, LegStatus.SENT, e.quantity, e.price, e.algo, sent_ms=e.time_ms)
    return replace(b, legs=b.legs + (record,))


def _effect(b: Bracket, e: BracketEvent) -> Bracket:
    k = e.kind
    if k is K.ENTRY_SUBMITTED:
        return replace(_add_leg(b, e, Leg.ENTRY), entry_open=True)
    if k is K.ENTRY_ACKED:
        return replace(b, legs=_set_leg(b, e.client_id, exchange_id=e.exchange_id, acked_ms=e.time_ms))
    if k in (K.ENTRY_PARTIAL_FILL, K.ENTRY_FILLED):
        assert e.quantity is not None and e.price is not None
        filled = b.entry_filled_qty + e.quantity
        legs = _set_leg(b, e.client_id, filled_qty=filled, status=LegStatus.FILLED if k is K.ENTRY_FILLED
                        else LegStatus.OPEN)
        first = b.first_fill_ms if b.first_fill_ms is not None else e.time_ms
        unprotected = b.unprotected_since_ms
        if unprotected is None and b.active_stop is None:
            unprotected = e.time_ms
        venue_first = b.entry_fill_time_ms if b.entry_fill_time_ms is not None else e.fill_time_ms
        return replace(b, legs=legs, entry_filled_qty=filled, entry_notional=b.entry_notional + e.quantity * e.price,
                       entry_open=k is not K.ENTRY_FILLED, first_fill_ms=first, unprotected_since_ms=unprotected,
                       entry_fill_time_ms=venue_first)
    if k is K.ENTRY_ENDED:
        legs = _set_leg(b, e.client_id, status=LegStatus.CANCELLED, reason=e.reason) if b.legs else b.legs
        reason = b.close_reason or (e.reason if b.entry_filled_qty == 0 else "")
        return replace(b, legs=legs, entry_open=False, close_reason=reason)
    if k in (K.SL_SUBMITTED, K.TP_SUBMITTED, K.FLATTEN_SUBMITTED):
        leg = {K.SL_SUBMITTED: Leg.STOP_LOSS, K.TP_SUBMITTED: Leg.TAKE_PROFIT}.get(k, Leg.FLATTEN)
        out = _add_leg(b, e, leg)
        if k is K.FLATTEN_SUBMITTED:
            if e.failed and not b.failure_reason:
                out = replace(out, failure_reason=e.reason or "protection failed")
            if not b.close_reason:
                out = replace(out, close_reason=f"flatten: {e.reason}" if e.reason else "flatten")
        return out
    if k in (K.SL_ACKED, K.TP_ACKED):
        out = replace(b, legs=_set_leg(b, e.client_id, status=LegStatus.OPEN, exchange_id=e.exchange_id,
                                       acked_ms=e.time_ms))
        if k is K.SL_ACKED:
            out = replace(out, sl_acked_ms=b.sl_acked_ms if b.sl_acked_ms is not None else e.time_ms,
                          unprotected_since_ms=None)
        return out
    if k is K.LEG_REJECTED:
        return replace(b, legs=_set_leg(b, e.client_id, status=LegStatus.REJECTED, reason=e.reason))
    if k in (K.LEG_CANCELLED, K.SL_LOST):
        out = replace(b, legs=_set_leg(b, e.client_id, status=LegStatus.CANCELLED, reason=e.reason))
        if out.active_stop is None and out.open_qty > 0 and out.unprotected_since_ms is None:
            out = replace(out, unprotected_since_ms=e.time_ms)
        return out
    if k is K.EXIT_FILL:
        assert e.quantity is not None and e.price is not None
        out = replace(b, exit_filled_qty=b.exit_filled_qty + e.quantity,
                      exit_notional=b.exit_notional + e.quantity * e.price,
                      exit_fill_time_ms=_latest(b.exit_fill_time_ms, e.fill_time_ms))
        record = b.leg_by_client_id(e.client_id)
        if record is not None:
            filled = record.filled_qty + e.quantity
            done = e.final or (record.quantity is not None and filled >= record.quantity)
            out = replace(out, legs=_set_leg(b, e.client_id, filled_qty=filled,
                                             status=LegStatus.FILLED if done else record.status))
        if not b.close_reason:
            source = {Leg.TAKE_PROFIT: "take_profit", Leg.STOP_LOSS: "stop_loss", Leg.FLATTEN: "flatten"}
            out = replace(out, close_reason=source[record.leg] if record else f"outside order: {e.reason}")
        if out.open_qty <= 0:
            out = replace(out, unprotected_since_ms=None)
        return out
    if k is K.RESIZE_ABANDONED:
        return b
    if k is K.POSITION_FLAT:
        return replace(b, closed_ms=e.time_ms, unprotected_since_ms=None)
    if k is K.FAIL:
        return replace(b, closed_ms=e.time_ms, failure_reason=b.failure_reason or e.reason,
                       unprotected_since_ms=None)
    raise IllegalTransition(f"no effect defined for {k.value}")


def _latest(known: int | None, new: int | None) -> int | None:
    """The later of two optional exchange times (fills may be learned out of order)."""
    if known is None:
        return new
    return known if new is None else max(known, new)


def check_invariants(b: Bracket) -> list[str]:
    """Every rule a bracket record must satisfy (empty list = consistent)."""
    problems = []
    if not 0 <= b.entry_filled_qty <= b.requested_qty:
        problems.append(f"entry filled {b.entry_filled_qty} outside [0, {b.requested_qty}]")
    if b.exit_filled_qty < 0:
        problems.append("negative exit quantity")
    ids = [r.client_id for r in b.legs]
    if len(ids) != len(set(ids)):
        problems.append("two legs share a client id")
    if (b.first_fill_ms is None) != (b.entry_filled_qty == 0):
        problems.append("first_fill_ms must be set exactly when something filled")
    st = b.state
    if st is S.ENTRY_SENT and (b.entry_filled_qty or not b.entry_open):
        problems.append("ENTRY_SENT with fills or without a working entry")
    if st is S.ENTRY_PARTIAL and not (b.entry_open and 0 < b.entry_filled_qty < b.requested_qty):
        problems.append("ENTRY_PARTIAL needs a working, partly filled entry")
    if st is S.ENTRY_FILLED and (b.entry_open or not b.entry_filled_qty):
        problems.append("ENTRY_FILLED needs an ended entry with fills")
    if st is S.PROTECTED and b.active_stop is None:
        problems.append("PROTECTED without an acknowledged live stop")
    if st in (S.CLOSED, S.FAILED) and (b.open_qty != 0 or b.live_legs() or b.entry_open):
        problems.append(f"{st.value} while not flat or with live legs")
    if st is S.FAILED and not b.failure_reason:
        problems.append("FAILED without a reason")
    if st is S.CANCELLED and (b.entry_filled_qty or b.entry_open):
        problems.append("CANCELLED with fills or a working entry")
    return problems


def transition(b: Bracket, e: BracketEvent) -> Bracket:
    """The bracket after ``e``; raises ``IllegalTransition`` (leaving ``b`` as it was) otherwise.

    A duplicate acknowledgement (same leg, same or no exchange id) returns ``b`` itself: the
    caller can tell by identity that nothing happened and nothing needs journaling.
    """
    if is_duplicate_ack(b, e):
        return b
    target = TRANSITIONS.get((b.state, e.kind))
    if target is None:
        raise IllegalTransition(f"bracket {b.id}: {e.kind.value} is not allowed in {b.state.value}")
    if problem := GUARDS[e.kind](b, e):
        raise IllegalTransition(f"bracket {b.id}: {e.kind.value} refused in {b.state.value}: {problem}")
    after = replace(_effect(b, e), state=target, version=b.version + 1)
    if problems := check_invariants(after):
        raise IllegalTransition(f"bracket {b.id}: {e.kind.value} would break: {'; '.join(problems)}")
    return after
