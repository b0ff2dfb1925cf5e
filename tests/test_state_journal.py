"""state.journal: write-ahead intents, outcome classification, torn lines, atomic compaction."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.errors import AuthError, Rejected, Retryable, StateError, UnknownOutcome
from core.types import AlgoOrderRequest, Order, OrderRequest, OrderStatus, OrderType, Side
from state.journal import (
    EntryKind,
    IntentAction,
    Journal,
    JournaledIntent,
    OrderIntent,
    OutcomeStatus,
    decode_intent,
    decode_outcome,
    scan,
)

D = Decimal


def _intent(cid: str = "cAAAAAABTCUSDT.1E0") -> OrderIntent:
    request = OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), cid)
    return OrderIntent(IntentAction.PLACE_ORDER, "BTCUSDT", cid, request, bracket_id="b1", leg="E")


def _order(cid: str, order_id: int = 77) -> Order:
    return Order("BTCUSDT", order_id, cid, Side.BUY, OrderType.MARKET, OrderStatus.FILLED, D("0.010"), D(0))


def test_intent_validation() -> None:
    with pytest.raises(ValueError, match="needs a request"):
        OrderIntent(IntentAction.PLACE_ORDER, "BTCUSDT", "c")
    with pytest.raises(ValueError, match="AlgoOrderRequest"):
        OrderIntent(IntentAction.PLACE_ALGO, "BTCUSDT", "c", _intent().request)
    with pytest.raises(ValueError, match="carries no request"):
        OrderIntent(IntentAction.CANCEL_ORDER, "BTCUSDT", "c", _intent().request)


async def test_the_intent_is_on_disk_before_the_request_leaves(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, FakeClock())
    seen_on_disk: list[JournaledIntent] = []

    async def send(ticket: JournaledIntent) -> Order:
        # at the moment of sending, a fresh reader already finds the intent
        entries = scan(path).entries
        seen_on_disk.append(decode_intent(entries[-1]))
        return _order(ticket.intent.client_id)

    result = await journal.submit(_intent(), send)
    assert result.order_id == 77
    assert seen_on_disk[0].intent == _intent()
    outcome = decode_outcome(scan(path).entries[-1])
    assert outcome.status is OutcomeStatus.ACCEPTED and outcome.exchange_id == 77
    assert journal.pending() == []


@pytest.mark.parametrize(
    ("error", "status", "pending"),
    [
        (Rejected(-2019, "Margin is insufficient."), OutcomeStatus.REJECTED, False),
        (UnknownOutcome("503 Unknown error", client_id="c"), OutcomeStatus.UNKNOWN, True),
        (Retryable("connection refused"), OutcomeStatus.NOT_SENT, False),
        (AuthError("bad key", code=-2015), OutcomeStatus.NOT_SENT, False),
        (RuntimeError("bug after send"), OutcomeStatus.UNKNOWN, True),
    ],
)
async def test_outcomes_are_classified_from_kernel_errors(
    tmp_path: Path, error: Exception, status: OutcomeStatus, pending: bool
) -> None:
    journal = Journal.open(tmp_path / "j.jsonl", FakeClock())

    async def send(ticket: JournaledIntent) -> Order:
        raise error

    with pytest.raises(type(error)):
        await journal.submit(_intent(), send)
    outcome = decode_outcome(scan(journal.path).entries[-1])
    assert outcome.status is status
    if isinstance(error, Rejected):
        assert outcome.code == -2019 and "insufficient" in outcome.message
    assert [t.intent.client_id for t in journal.pending()] == (["cAAAAAABTCUSDT.1E0"] if pending else [])


async def test_cancellation_in_flight_leaves_the_intent_pending(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.jsonl", FakeClock())
    started = asyncio.Event()

    async def send(ticket: JournaledIntent) -> Order:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    task = asyncio.create_task(journal.submit(_intent(), send))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(journal.pending()) == 1
    assert decode_outcome(scan(journal.path).entries[-1]).status is OutcomeStatus.UNKNOWN


def test_reopen_continues_numbering_and_pending(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    clock = FakeClock()
    journal = Journal.open(path, clock)
    t1 = journal.record_intent(_intent("c1"))
    t2 = journal.record_intent(_intent("c2"))
    journal.record_outcome(t1, OutcomeStatus.ACCEPTED, exchange_id=5)
    journal.close()
    again = Journal.open(path, clock)
    assert again.last_seq == 3
    assert [t.seq for t in again.pending()] == [t2.seq]
    assert again.append(EntryKind.FILL, {"x": 1}) == 4
    algo = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "c3", trigger_price=D("9"),
                            close_position=True)
    ticket = again.record_intent(OrderIntent(IntentAction.PLACE_ALGO, "BTCUSDT", "c3", algo))
    assert decode_intent(scan(path).entries[-1]) == ticket


def test_min_seq_keeps_numbering_ahead_of_a_snapshot(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.jsonl", FakeClock(), min_seq=41)
    assert journal.append(EntryKind.FILL, {}) == 42


def _write_entries(path: Path, n: int) -> bytes:
    journal = Journal.open(path, FakeClock(), fsync=False)
    for i in range(n):
        journal.record_intent(_intent(f"c{i}"))
    journal.close()
    return path.read_bytes()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_a_torn_tail_never_costs_an_earlier_entry(tmp_path: Path, cut: int) -> None:
    path = tmp_path / f"torn-{cut}.jsonl"
    raw = _write_entries(path, 5)
    cut = cut % (len(raw) + 1)
    path.write_bytes(raw[:cut])
    complete = raw[:cut].count(b"\n")
    found = scan(path)
    assert [e.seq for e in found.entries][:complete] == list(range(1, complete + 1))
    torn = found.torn_tail
    if raw[:cut].endswith(b"\n") or cut == 0:
        assert torn is None and len(found.entries) == complete
    elif torn is None:  # cut exactly before a newline: the entry itself is complete and kept
        assert len(found.entries) == complete + 1
    # reopening cuts the torn bytes off, and the next append lands on a clean line
    journal = Journal.open(path, FakeClock(), fsync=False)
    journal.record_intent(_intent("after"))
    journal.close()
    again = scan(path)
    assert again.bad_lines == ()
    assert decode_intent(again.entries[-1]).intent.client_id == "after"
    assert [e.seq for e in again.entries] == list(range(1, len(again.entries) + 1))


def test_a_damaged_middle_line_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    raw = _write_entries(path, 3)
    lines = raw.split(b"\n")
    lines[1] = lines[1].replace(b"c1", b"cX")  # still JSON, checksum no longer matches
    path.write_bytes(b"\n".join(lines))
    found = scan(path)
    assert [e.seq for e in found.entries] == [1, 3]
    assert len(found.bad_lines) == 1 and "checksum" in found.bad_lines[0].reason
    assert not found.bad_lines[0].torn


def test_compaction_is_atomic_and_keeps_the_base(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    clock = FakeClock()
    journal = Journal.open(path, clock)
    for i in range(6):
        journal.append(EntryKind.FILL, {"i": i})
    assert journal.compact(4) == 4
    assert journal.compact(2) == 0  # already below the base
    with pytest.raises(StateError, match="only reached"):
        journal.compact(100)
    found = scan(path)
    assert found.base_seq == 4 and [e.seq for e in found.entries] == [5, 6]
    journal.append(EntryKind.FILL, {"i": 6})
    journal.close()
    # compacted to nothing: numbering still continues from the header
    again = Journal.open(path, clock)
    again.compact(7)
    again.close()
    assert Journal.open(path, clock).append(EntryKind.FILL, {}) == 8
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_append_is_taken_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, FakeClock())
    journal.record_intent(_intent("c1"))
    real_write = os.write
    calls = {"n": 0}

    def flaky_write(fd: int, data: bytes) -> int:  # half a line lands, then the disk is full
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", flaky_write)
    with pytest.raises(StateError, match="No space left"):
        journal.record_intent(_intent("c2"))
    monkeypatch.setattr(os, "write", real_write)
    assert [t.intent.client_id for t in journal.pending()] == ["c1"]  # c2 never counted as journaled
    assert journal.record_intent(_intent("c3")).seq == 2
    found = scan(path)
    assert found.bad_lines == () and [decode_intent(e).intent.client_id for e in found.entries] == ["c1", "c3"]


def test_deferred_appends_are_written_at_once_and_fsynced_together(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, FakeClock())
    real_fsync = os.fsync
    synced: list[int] = []

    def counting_fsync(fd: int) -> None:  # the real fsync, counted
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    journal.record_transition({"bracket": "b1", "to": "PLANNED"})
    assert len(synced) == 1  # outside the scope: every append is fsynced
    with journal.deferred_sync():
        journal.record_transition({"bracket": "b2", "to": "PLANNED"})
        journal.record_transition({"bracket": "b2", "to": "ENTRY_SENT"})
        assert len(synced) == 1  # written, not fsynced…
        assert len(scan(path).entries) == 3  # …but in the file already: a process crash loses nothing
    journal.sync()
    journal.sync()  # nothing new since: no second fsync
    assert len(synced) == 2
    with journal.deferred_sync():
        journal.record_transition({"bracket": "b3", "to": "PLANNED"})
    journal.record_intent(_intent("c1"))  # the next fsynced append makes the deferred one durable too
    assert len(synced) == 3
    journal.sync()
    assert len(synced) == 3


async def test_on_an_event_loop_facts_are_written_at_once_and_fsynced_together_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import threading

    path = tmp_path / "j.jsonl"
    journal = Journal.open(path, FakeClock())
    real_fsync = os.fsync
    threads: list[str] = []

    def counting_fsync(fd: int) -> None:  # the real fsync, counted with the thread that ran it
        threads.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    seqs = [journal.record_transition({"bracket": f"b{i}", "to": "PLANNED"}) for i in range(20)]
    assert len(scan(path).entries) == 20  # every line is in the file before append returns
    assert journal.durable_seq < seqs[-1]  # …and made durable afterwards, not before returning
    await journal.durable(seqs[-1])
    assert journal.durable_seq >= seqs[-1]
    assert len(threads) == 2  # the first line's fsync, then one for the 19 written while it ran
    assert all(name.startswith("casino-journal") for name in threads)  # never on the loop's thread
    journal.close()


async def test_submit_sends_only_once_its_intent_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    journal = Journal.open(tmp_path / "j.jsonl", FakeClock())
    real_fsync = os.fsync
    gate = asyncio.Event()
    fsyncs = 0

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    seen: list[tuple[int, int]] = []

    async def send(ticket: JournaledIntent) -> Order:
        seen.append((ticket.seq, journal.durable_seq))
        await gate.wait()
        return _order(ticket.intent.client_id)

    burst = [asyncio.create_task(journal.submit(_intent(f"c{i}"), send)) for i in range(10)]
    while len(seen) < 10:
        await asyncio.sleep(0.001)
    assert all(durable >= seq for seq, durable in seen)  # the write-ahead rule holds for each
    assert fsyncs <= 3  # ten intents written together share their fsyncs
    gate.set()
    await asyncio.gather(*burst)
    assert journal.pending() == []
    journal.close()


async def test_a_failed_fsync_means_the_request_does_not_leave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    journal = Journal.open(tmp_path / "j.jsonl", FakeClock())

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    sent: list[str] = []

    async def send(ticket: JournaledIntent) -> Order:
        sent.append(ticket.intent.client_id)
        return _order(ticket.intent.client_id)

    with pytest.raises(StateError, match="fsync failed"):
        await journal.submit(_intent("c1"), send)
    assert sent == [] and journal.pending() == []  # recorded NOT_SENT: nothing to resolve later
    monkeypatch.undo()
    journal.close()


@pytest.mark.timeout(30)
async def test_waiting_on_an_fsync_that_already_finished_returns(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.jsonl", FakeClock())
    seq = journal.record_transition({"bracket": "b1", "to": "PLANNED"})  # its fsync starts on the journal thread
    journal._wait_for_sync()  # …and finishes;
    await asyncio.sleep(0)  # the loop marks its future done, and queues the completion callback behind this task
    # awaiting a finished future does not yield to the loop: durable() must account for it
    # itself instead of looping on it (it once spun forever here, the loop starved)
    await journal.durable(seq)
    assert journal.durable_seq >= seq
    journal.close()
