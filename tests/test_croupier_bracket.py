"""croupier.bracket: the transition table, guards, invariants, journaling through the book."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import metrics
from core.clock import FakeClock
from core.types import Side
from croupier.bracket import (
    TRANSITIONS,
    Bracket,
    BracketEvent,
    BracketState,
    EventKind,
    IllegalTransition,
    LegStatus,
    check_invariants,
    transition,
)
from croupier.bracket_book import BracketBook, journal_sink
from croupier.ids import Leg, parse
from state import codec
from state.recovery import recover_local
from state.snapshot import FileSnapshotStore

D = Decimal
S = BracketState
K = EventKind


def _bracket(qty: str = "0.010") -> Bracket:
    return Bracket("k3x9q0", "BTCUSDT", Side.BUY, 1, D(qty), tp_price=D("101"), sl_price=D("99"), created_ms=1)


class Driver:
    """Applies events by name, filling in the client ids the bracket expects."""

    def __init__(self, bracket: Bracket) -> None:
        self.b = bracket
        self.t = 1000

    def do(self, kind: EventKind, *, leg: Leg | None = None, cid: str | None = None, **kw: object) -> Bracket:
        self.t += 10
        if cid is None and leg is not None:
            cid = self.b.next_client_id(leg)
        self.b = transition(self.b, BracketEvent(kind, self.t, cid or "", **kw))  # type: ignore[arg-type]
        return self.b

    def entry_id(self) -> str:
        assert self.b.entry_leg is not None
        return self.b.entry_leg.client_id

    def ids(self, leg: Leg) -> list[str]:
        return [r.client_id for r in self.b.legs if r.leg is leg]


def test_take_profit_lifecycle() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    assert d.b.state is S.ENTRY_SENT and parse(d.entry_id()).leg is Leg.ENTRY  # type: ignore[union-attr]
    d.do(K.ENTRY_ACKED, cid=d.entry_id(), exchange_id=555)
    d.do(K.ENTRY_FILLED, cid=d.entry_id(), quantity=D("0.010"), price=D("100.0"))
    assert d.b.state is S.ENTRY_FILLED and d.b.needs_protection and d.b.unprotected_since_ms == d.b.first_fill_ms
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, quantity=None, price=D("99"), algo=True)
    d.do(K.TP_SUBMITTED, leg=Leg.TAKE_PROFIT, quantity=None, price=D("101"), algo=True)
    assert d.b.state is S.PROTECTING and not d.b.needs_protection
    d.do(K.TP_ACKED, cid=d.ids(Leg.TAKE_PROFIT)[0], exchange_id=8)
    assert d.b.state is S.PROTECTING  # a take-profit alone protects nothing
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0], exchange_id=7)
    assert d.b.state is S.PROTECTED and d.b.unprotected_ms == 40 and d.b.unprotected_since_ms is None
    d.do(K.EXIT_FILL, cid=d.ids(Leg.TAKE_PROFIT)[0], quantity=D("0.010"), price=D("101.0"), final=True)
    assert d.b.state is S.EXITING and d.b.close_reason == "take_profit" and d.b.open_qty == 0
    with pytest.raises(IllegalTransition, match="not flat"):
        d.do(K.POSITION_FLAT)  # the stop is still live
    d.do(K.LEG_CANCELLED, cid=d.ids(Leg.STOP_LOSS)[0], reason="sibling filled")
    d.do(K.POSITION_FLAT)
    assert d.b.state is S.CLOSED and d.b.avg_entry_price == D("100") and d.b.avg_exit_price == D("101")
    assert d.b.leg_by_client_id(d.ids(Leg.STOP_LOSS)[0]).status is LegStatus.CANCELLED  # type: ignore[union-attr]
    assert not d.b.live_legs()


def test_partial_fills_are_protected_at_once_and_resized_stop_first() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_PARTIAL_FILL, cid=d.entry_id(), quantity=D("0.004"), price=D("100"))
    assert d.b.state is S.ENTRY_PARTIAL
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, quantity=D("0.004"), price=D("99"), algo=True)
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0])
    assert d.b.state is S.PROTECTED and not d.b.needs_resize
    d.do(K.ENTRY_PARTIAL_FILL, cid=d.entry_id(), quantity=D("0.003"), price=D("100.2"))
    assert d.b.state is S.PROTECTED and d.b.needs_resize and d.b.open_qty == D("0.007")
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, quantity=D("0.007"), price=D("99"), algo=True)
    assert d.b.state is S.RESIZING and d.b.active_stop.client_id == d.ids(Leg.STOP_LOSS)[0]  # type: ignore[union-attr]
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[1])
    assert d.b.state is S.PROTECTED and len(d.b.live_legs(Leg.STOP_LOSS)) == 2
    d.do(K.LEG_CANCELLED, cid=d.ids(Leg.STOP_LOSS)[0], reason="replaced")
    assert not d.b.needs_resize and d.b.active_stop.quantity == D("0.007")  # type: ignore[union-attr]
    d.do(K.ENTRY_ENDED, cid=d.entry_id(), reason="entry timeout")
    assert d.b.state is S.PROTECTED and not d.b.entry_open and d.b.close_reason == ""
    assert parse(d.ids(Leg.STOP_LOSS)[1]).attempt == 1  # type: ignore[union-attr]


def test_an_entry_that_never_fills_is_cancelled_with_its_reason() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_ENDED, cid=d.entry_id(), reason="LIMIT entry timed out after 60 s")
    assert d.b.state is S.CANCELLED and d.b.close_reason == "LIMIT entry timed out after 60 s"
    with pytest.raises(IllegalTransition, match="not allowed in CANCELLED"):
        d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS)


def test_protection_rejected_then_flattened_ends_failed_with_the_reason() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_FILLED, cid=d.entry_id(), quantity=D("0.010"), price=D("100"))
    for attempt in range(3):
        d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, price=D("99"), algo=True)
        d.do(K.LEG_REJECTED, cid=d.ids(Leg.STOP_LOSS)[attempt], reason="-2021 Order would immediately trigger.")
    assert d.b.state is S.PROTECTING and d.b.active_stop is None
    d.do(K.FLATTEN_SUBMITTED, leg=Leg.FLATTEN, quantity=D("0.010"), failed=True, reason="stop rejected 3 times")
    assert d.b.state is S.FLATTENING
    d.do(K.EXIT_FILL, cid=d.ids(Leg.FLATTEN)[0], quantity=D("0.010"), price=D("98.5"), final=True)
    with pytest.raises(IllegalTransition, match="finish with FAIL"):
        d.do(K.POSITION_FLAT)
    d.do(K.FAIL)
    assert d.b.state is S.FAILED and d.b.failure_reason == "stop rejected 3 times"


def test_fill_on_the_stream_before_the_rest_reply() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_FILLED, cid=d.entry_id(), quantity=D("0.010"), price=D("100"))
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, price=D("99"), algo=True)
    d.do(K.ENTRY_ACKED, cid=d.entry_id(), exchange_id=42)
    assert d.b.state is S.PROTECTING and d.b.entry_leg.exchange_id == 42  # type: ignore[union-attr]


def test_duplicate_acks_are_no_ops_and_conflicting_ones_refused() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_ACKED, cid=d.entry_id(), exchange_id=5)
    before = d.b
    assert d.do(K.ENTRY_ACKED, cid=d.entry_id(), exchange_id=5) is before
    d.do(K.ENTRY_FILLED, cid=d.entry_id(), quantity=D("0.010"), price=D("100"))
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, price=D("99"), algo=True)
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0], exchange_id=7)
    acked = d.b
    assert d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0], exchange_id=7) is acked  # REST reply + ALGO_UPDATE
    with pytest.raises(IllegalTransition, match="already acknowledged"):
        d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0], exchange_id=8)


def test_a_failed_resize_falls_back_to_the_old_stop() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_PARTIAL_FILL, cid=d.entry_id(), quantity=D("0.004"), price=D("100"))
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, quantity=D("0.004"), price=D("99"), algo=True)
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0], exchange_id=1)
    d.do(K.ENTRY_PARTIAL_FILL, cid=d.entry_id(), quantity=D("0.002"), price=D("100"))
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, quantity=D("0.006"), price=D("99"), algo=True)
    with pytest.raises(IllegalTransition, match="still on its way"):
        d.do(K.RESIZE_ABANDONED)
    d.do(K.LEG_REJECTED, cid=d.ids(Leg.STOP_LOSS)[1], reason="-2022 ReduceOnly Order is rejected.")
    d.do(K.RESIZE_ABANDONED)
    assert d.b.state is S.PROTECTED and d.b.needs_resize  # still short: the OCO tries again or flattens


def test_losing_the_stop_goes_back_to_protecting() -> None:
    d = Driver(_bracket())
    d.do(K.ENTRY_SUBMITTED, leg=Leg.ENTRY, quantity=D("0.010"))
    d.do(K.ENTRY_FILLED, cid=d.entry_id(), quantity=D("0.010"), price=D("100"))
    d.do(K.SL_SUBMITTED, leg=Leg.STOP_LOSS, price=D("99"), algo=True)
    d.do(K.SL_ACKED, cid=d.ids(Leg.STOP_LOSS)[0])
    with pytest.raises(IllegalTransition, match="SL_LOST"):
        d.do(K.LEG_CANCELLED, cid=d.ids(Leg.STOP_LOSS)[0])
    d.do(K.SL_LOST, cid=d.ids(Leg.STOP_LOSS)[0], reason="EXPIRED by the exchange")
    assert d.b.state is S.PROTECTING and d.b.unprotected_since_ms == d.t and d.b.needs_protection


@pytest.mark.parametrize(
    ("setup", "event", "match"),
    [
        ([], BracketEvent(K.SL_ACKED, 1, "x"), "not allowed in PLANNED"),
        ([], BracketEvent(K.ENTRY_SUBMITTED, 1, "wrong", quantity=D("0.010")), "must use client id"),
        ([], BracketEvent(K.ENTRY_SUBMITTED, 1, "ck3x9q0BTCUSDT.1E0", quantity=D("1")), "requested"),
        (["entry"], BracketEvent(K.ENTRY_FILLED, 1, "ck3x9q0BTCUSDT.1E0", quantity=D("0.004"), price=D(1)),
         "must complete"),
        (["entry"], BracketEvent(K.ENTRY_PARTIAL_FILL, 1, "ck3x9q0BTCUSDT.1E0", quantity=D("0.010"), price=D(1)),
         "leave some"),
        (["entry"], BracketEvent(K.ENTRY_PARTIAL_FILL, 1, "ck3x9q0BTCUSDT.1E0", quantity=D("0.001")),
         "positive quantity and price"),
        (["entry"], BracketEvent(K.FAIL, 1, reason="x"), "not flat"),
        (["entry"], BracketEvent(K.EXIT_FILL, 1, "z", quantity=D(1), price=D(1)), "not allowed in ENTRY_SENT"),
    ],
)
def test_illegal_events_raise_and_change_nothing(setup: list[str], event: BracketEvent, match: str) -> None:
    b = _bracket()
    if setup:
        b = transition(b, BracketEvent(K.ENTRY_SUBMITTED, 1, b.next_client_id(Leg.ENTRY), quantity=D("0.010")))
    before = b
    with pytest.raises(IllegalTransition, match=match):
        transition(b, event)
    assert b == before


def test_terminal_states_have_no_way_out_but_a_late_entry_ack() -> None:
    for (state, kind), target in TRANSITIONS.items():
        if state.is_terminal:
            assert (state, kind, target) == (S.CANCELLED, K.ENTRY_ACKED, S.CANCELLED)


# ------------------------------------------------------------------ random sequences

_QTYS = [D("0.001"), D("0.002"), D("0.003"), D("0.004"), D("0.010")]


_KINDS = list(EventKind)
_PRICES = [None, D("99"), D("100"), D("101")]
# one step = a handful of small integers, mapped onto the bracket's current situation below
_STEP = st.tuples(st.integers(0, 9), st.integers(0, 63), st.integers(0, 63), st.integers(0, 63),
                  st.integers(0, 3), st.integers(0, 15))


def _event_for(b: Bracket, t: int, step: tuple[int, int, int, int, int, int]) -> BracketEvent:
    bias, k, c, q, p, flags = step
    allowed = sorted((kind for (state, kind) in TRANSITIONS if state is b.state), key=lambda kind: kind.value)
    onward = [kind for kind in allowed if not TRANSITIONS[(b.state, kind)].is_terminal]
    # mostly events that keep the bracket going (so sequences get deep), then any allowed one,
    # sometimes anything at all
    if onward and bias < 6:
        kind = onward[k % len(onward)]
    elif allowed and bias < 8:
        kind = allowed[k % len(allowed)]
    else:
        kind = _KINDS[k % len(_KINDS)]
    leg_for_submit = {K.ENTRY_SUBMITTED: Leg.ENTRY, K.SL_SUBMITTED: Leg.STOP_LOSS, K.TP_SUBMITTED: Leg.TAKE_PROFIT,
                      K.FLATTEN_SUBMITTED: Leg.FLATTEN}.get(kind)
    relevant = {K.SL_ACKED: (Leg.STOP_LOSS,), K.SL_LOST: (Leg.STOP_LOSS,), K.TP_ACKED: (Leg.TAKE_PROFIT,),
                K.EXIT_FILL: (Leg.STOP_LOSS, Leg.TAKE_PROFIT, Leg.FLATTEN),
                K.LEG_CANCELLED: (Leg.STOP_LOSS, Leg.TAKE_PROFIT, Leg.FLATTEN),
                K.LEG_REJECTED: (Leg.STOP_LOSS, Leg.TAKE_PROFIT, Leg.FLATTEN)}.get(kind, (Leg.ENTRY,))
    likely = [r.client_id for r in b.legs if r.leg in relevant and r.status.is_live]
    choices = likely * 4 + [r.client_id for r in b.legs] + ["foreign-1"]
    if leg_for_submit is not None:
        choices = [b.next_client_id(leg_for_submit)] * (3 * len(choices)) + choices
    remaining = b.requested_qty - b.entry_filled_qty
    qty_choices: list[Decimal | None] = [None, *_QTYS]
    if kind is K.ENTRY_SUBMITTED:
        qty_choices += [b.requested_qty] * 6
    if remaining > 0:
        qty_choices += [remaining] * 3 + [min(_QTYS[0], remaining)] * 3
    if b.open_qty > 0:
        qty_choices += [b.open_qty] * 3
    return BracketEvent(kind, t, choices[c % len(choices)], exchange_id=flags or None,
                        quantity=qty_choices[q % len(qty_choices)], price=_PRICES[p] or D("100") if q % 2 else
                        _PRICES[p], algo=bool(flags & 1), final=bool(flags & 2), failed=bool(flags & 4),
                        reason="why" if flags & 8 else "")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=1, max_size=40))
def test_random_event_sequences_never_reach_an_illegal_state_silently(steps: list[tuple[int, ...]]) -> None:
    b = _bracket()
    for n, step in enumerate(steps):
        event = _event_for(b, 1000 + n, step)  # type: ignore[arg-type]
        try:
            after = transition(b, event)
        except IllegalTransition:
            continue  # refused loudly; ``b`` is untouched (records are immutable)
        if after is b:  # a duplicate acknowledgement: a no-op by rule
            assert event.kind in (K.ENTRY_ACKED, K.SL_ACKED, K.TP_ACKED)
            continue
        assert TRANSITIONS[(b.state, event.kind)] is after.state
        assert check_invariants(after) == []
        assert after.version == b.version + 1
        if after.state is S.PROTECTED:
            assert after.active_stop is not None
        b = after
    assert codec.decode(Bracket, codec.loads(codec.dumps(b))) == b


def test_the_random_event_generator_reaches_every_state() -> None:
    """The property above is only worth something if its sequences get everywhere."""
    rng = random.Random(20261122)
    reached: set[BracketState] = set()
    for _ in range(400):
        b = _bracket()
        for n in range(30):
            step = (rng.randint(0, 9), rng.randint(0, 63), rng.randint(0, 63), rng.randint(0, 63),
                    rng.randint(0, 3), rng.randint(0, 15))
            try:
                b = transition(b, _event_for(b, 1000 + n, step))
            except IllegalTransition:
                continue
            reached.add(b.state)
    assert reached == set(BracketState) - {S.PLANNED}


# ------------------------------------------------------------------------- the book


def test_book_journals_before_committing_and_recovery_restores_it(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileSnapshotStore(tmp_path / "snap")
    recovered = recover_local(store, tmp_path / "journal.jsonl", clock)
    book = BracketBook(journal_sink(recovered.journal))
    b = book.open(_bracket())
    count_before = metrics.REGISTRY.get_sample_value("casino_unprotected_seconds_count") or 0
    events = [
        BracketEvent(K.ENTRY_SUBMITTED, 1_000, b.next_client_id(Leg.ENTRY), quantity=D("0.010")),
        BracketEvent(K.ENTRY_FILLED, 1_100, "ck3x9q0BTCUSDT.1E0", quantity=D("0.010"), price=D("100")),
        BracketEvent(K.SL_SUBMITTED, 1_120, "ck3x9q0BTCUSDT.1S0", price=D("99"), algo=True),
    ]
    for event in events:
        book.apply(b.id, event)
    assert book.unprotected_count() == 1
    book.apply(b.id, BracketEvent(K.SL_ACKED, 1_350, "ck3x9q0BTCUSDT.1S0", exchange_id=3))
    assert book.unprotected_count() == 0
    assert metrics.REGISTRY.get_sample_value("casino_unprotected_seconds_count") == count_before + 1
    with pytest.raises(IllegalTransition):
        book.apply(b.id, BracketEvent(K.POSITION_FLAT, 1_400))
    recovered.journal.close()
    # a crash now: the journal alone brings the book back exactly
    again = recover_local(store, tmp_path / "journal.jsonl", clock)
    restored = BracketBook.from_document(again.brackets)
    assert restored.get(b.id) == book.get(b.id)
    assert restored.find_by_client_id("ck3x9q0BTCUSDT.1S0") == book.get(b.id)
    assert again.report.replayed["TRANSITION"] == 5  # open + 4 events; the refused one left no trace


def test_the_snapshot_document_reencodes_only_changed_brackets_and_equals_a_fresh_encoding() -> None:
    book = BracketBook()
    b = book.open(_bracket())
    first = book.to_document()
    assert codec.dumps_plain(codec.encode(first)) == codec.dumps_plain({b.id: codec.encode(b)})
    assert book.to_document()[b.id] is first[b.id]  # unchanged: the same encoding, not walked again
    after = book.apply(b.id, BracketEvent(K.ENTRY_SUBMITTED, 1_000, b.next_client_id(Leg.ENTRY), quantity=D("0.010")))
    second = book.to_document()
    assert second[b.id] is not first[b.id]
    assert codec.dumps_plain(codec.encode(second)) == codec.dumps_plain({b.id: codec.encode(after)})
    restored = BracketBook.from_document(codec.loads(codec.dumps_plain(codec.encode(second))))
    assert restored.get(b.id) == after


def test_bracket_meta_for_a_snapshot_is_the_same_json_as_its_dict_and_follows_new_votes() -> None:
    from croupier.bracket_meta import BracketMeta

    meta = BracketMeta(0.01, 0.02, 0.3, (("ema_cross@1m", 0.5), ("rsi@5m", 1.25)), 123, fees=D("0.1"),
                       leg_notional={"x": D("2.5")})
    same = codec.dumps_plain(codec.encode(meta.to_document()))
    assert same == codec.dumps_plain(codec.encode(meta.to_dict()))
    meta.fees += D("0.05")  # money changes between snapshots; the cached votes do not hide it
    assert codec.loads(codec.dumps_plain(codec.encode(meta.to_document())))["fees"] == "0.15"
    meta.votes = (("macd@1h", 2.0),)
    assert codec.loads(codec.dumps_plain(codec.encode(meta.to_document())))["votes"] == [["macd@1h", 2.0]]
    assert BracketMeta.from_dict(codec.loads(codec.dumps_plain(codec.encode(meta.to_document())))).votes == meta.votes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["open", "fail", "drop", "reload"]), st.integers(0, 2), st.integers(0, 9)),
                max_size=40))
def test_active_on_is_the_first_active_bracket_on_the_symbol_through_any_history(
    steps: list[tuple[str, int, int]],
) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    book = BracketBook()
    number = 0
    for action, s, pick in steps:
        if action == "open":  # the book itself allows several active brackets on one symbol
            number += 1
            book.open(Bracket("k3x9q0", symbols[s], Side.BUY, number, D("0.010"), created_ms=1))
        elif action == "fail":
            active = book.active()
            if active:
                book.apply(active[pick % len(active)].id, BracketEvent(K.FAIL, 5, reason="test"))
        elif action == "drop":
            book.drop_terminal()
        else:
            book = BracketBook.from_document(codec.loads(codec.dumps_plain(codec.encode(book.to_document()))))
        for symbol in symbols:
            assert book.active_on(symbol) == next((b for b in book.active() if b.symbol == symbol), None)
