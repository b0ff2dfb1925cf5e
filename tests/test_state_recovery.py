"""state.recovery: newest valid snapshot + journal replay → local state and unknown intents."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.errors import StateError
from core.types import Fill, Income, OrderRequest, OrderType, Side
from state import codec
from state.journal import EntryKind, IntentAction, Journal, OrderIntent, OutcomeStatus
from config.settings import Settings
from state.recovery import BRACKETS_KEY, JOURNAL_FILE, SNAPSHOT_DIR, recover_local, recover_state_dir
from state.snapshot import FileSnapshotStore, SnapshotWriter

D = Decimal


def _intent(cid: str) -> OrderIntent:
    return OrderIntent(IntentAction.PLACE_ORDER, "BTCUSDT", cid,
                       OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("1"), cid))


def _fill(trade_id: int) -> Fill:
    return Fill("BTCUSDT", 1, trade_id, "c", Side.BUY, D("100.5"), D("0.1"), D("0.005"), "USDT", D(0), False, trade_id)


def _setup(tmp_path: Path, generations: int = 3) -> tuple[FakeClock, FileSnapshotStore, Journal, dict]:
    clock = FakeClock()
    store = FileSnapshotStore(tmp_path / "snap", generations=generations)
    journal = Journal.open(tmp_path / "journal.jsonl", clock)
    state: dict = {BRACKETS_KEY: {}, "session": {"name": "s1"}}
    return clock, store, journal, state


def test_empty_directory_recovers_to_nothing(tmp_path: Path) -> None:
    got = recover_local(FileSnapshotStore(tmp_path / "s"), tmp_path / "j.jsonl", FakeClock())
    assert got.state == {} and got.unknown_intents == () and got.report.clean
    assert got.report.snapshot_path is None


def test_replays_everything_after_the_snapshot(tmp_path: Path) -> None:
    clock, store, journal, state = _setup(tmp_path)
    writer = SnapshotWriter(store, lambda: state, clock, 5.0, journal)
    # before the snapshot: one intent resolved, one still unknown
    done = journal.record_intent(_intent("c-done"))
    journal.record_outcome(done, OutcomeStatus.ACCEPTED, exchange_id=1)
    unknown_before = journal.record_intent(_intent("c-unknown-before"))
    journal.record_outcome(unknown_before, OutcomeStatus.UNKNOWN, message="timeout")
    state[BRACKETS_KEY]["b1"] = {"state": "PROTECTED"}
    journal.record_transition({"bracket_id": "b1", "bracket": {"state": "PROTECTED"}})
    journal.record_fill(_fill(1))
    writer.save_now()
    # after the snapshot (the crash comes before the next one)
    journal.record_transition({"bracket_id": "b1", "bracket": {"state": "EXITING"}})
    journal.record_transition({"bracket_id": "b2", "bracket": {"state": "ENTRY_SENT"}})
    journal.record_fill(_fill(2))
    journal.record_income(Income("BTCUSDT", "FUNDING_FEE", D("-0.01"), "USDT", 5, 99))
    resolved_after = journal.record_intent(_intent("c-resolved-after"))
    journal.record_outcome(resolved_after, OutcomeStatus.REJECTED, code=-2019)
    in_flight = journal.record_intent(_intent("c-in-flight"))
    journal.record_outcome(unknown_before, OutcomeStatus.ACCEPTED, exchange_id=3)  # resolved later
    journal.close()

    got = recover_local(store, tmp_path / "journal.jsonl", clock)
    assert got.report.clean, got.report.problems()
    assert got.brackets == {"b1": {"state": "EXITING"}, "b2": {"state": "ENTRY_SENT"}}
    assert got.state["session"] == {"name": "s1"} and "journal" not in got.state
    assert [f.trade_id for f in got.fills] == [2]  # fill 1 is already in the snapshot
    assert [i.tran_id for i in got.incomes] == [99]
    assert [t.intent.client_id for t in got.unknown_intents] == ["c-in-flight"]
    assert got.unknown_intents[0].seq == in_flight.seq
    # the journal continues, and its pending set is the recovered one
    assert [t.seq for t in got.journal.pending()] == [in_flight.seq]
    assert got.journal.append(EntryKind.FILL, {"x": 1}) == in_flight.seq + 2


def test_unknown_intent_carried_only_by_the_snapshot(tmp_path: Path) -> None:
    clock, store, journal, state = _setup(tmp_path, generations=1)
    writer = SnapshotWriter(store, lambda: state, clock, 5.0, journal)
    ticket = journal.record_intent(_intent("c-pending"))
    writer.save_now()  # compacts the intent line away; only the snapshot remembers it
    assert journal.base_seq == ticket.seq
    journal.close()
    got = recover_local(store, tmp_path / "journal.jsonl", clock)
    assert [t.intent for t in got.unknown_intents] == [_intent("c-pending")]


def test_fallback_to_an_older_generation_replays_forward_without_gap(tmp_path: Path) -> None:
    clock, store, journal, state = _setup(tmp_path, generations=3)
    writer = SnapshotWriter(store, lambda: dict(state), clock, 5.0, journal)
    for n in range(3):
        state["n"] = n
        journal.record_fill(_fill(n))
        writer.save_now()
    journal.record_fill(_fill(3))
    journal.close()
    newest = store.generation_paths()[0]
    newest.write_bytes(newest.read_bytes()[:50])
    got = recover_local(store, tmp_path / "journal.jsonl", clock)
    assert got.state["n"] == 1  # previous generation
    assert [f.trade_id for f in got.fills] == [2, 3]  # everything after it is still in the journal
    assert got.report.journal_gap is None
    assert [s.path for s in got.report.skipped_snapshots] == [newest]
    assert not got.report.clean


def test_a_gap_is_reported_when_compacted_entries_are_missing(tmp_path: Path) -> None:
    clock, store, journal, state = _setup(tmp_path, generations=1)
    writer = SnapshotWriter(store, lambda: dict(state), clock, 5.0, journal)
    journal.record_fill(_fill(1))
    writer.save_now()
    journal.close()
    store.generation_paths()[0].write_bytes(b"{")  # the only generation is lost
    got = recover_local(store, tmp_path / "journal.jsonl", clock)
    assert got.report.journal_gap == (1, 1)
    assert any("compacted away" in p for p in got.report.problems())


def test_torn_journal_tail_is_reported_not_fatal(tmp_path: Path) -> None:
    clock, store, journal, _ = _setup(tmp_path)
    journal.record_fill(_fill(1))
    journal.close()
    with open(tmp_path / "journal.jsonl", "ab") as fh:
        fh.write(b'{"seq": 2, "kind": "FI')
    got = recover_local(store, tmp_path / "journal.jsonl", clock)
    assert [f.trade_id for f in got.fills] == [1]
    assert len(got.report.journal_bad_lines) == 1 and got.report.journal_bad_lines[0].torn


def test_newer_schema_snapshot_stops_recovery(tmp_path: Path) -> None:
    import orjson

    store = FileSnapshotStore(tmp_path / "s")
    path = store.save({"x": 1})
    doc = orjson.loads(path.read_bytes())
    doc["schema_version"] = codec.SCHEMA_VERSION + 1
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(StateError, match="refusing"):
        recover_local(store, tmp_path / "j.jsonl", FakeClock())


def test_state_directory_layout_with_configured_generations(tmp_path: Path) -> None:
    cfg = Settings().croupier
    clock = FakeClock()
    store, got = recover_state_dir(tmp_path, clock, generations=cfg.snapshot_generations, fsync=cfg.journal_fsync)
    writer = SnapshotWriter(store, lambda: {"n": 1}, clock, cfg.snapshot_interval_s, got.journal)
    for _ in range(cfg.snapshot_generations + 3):
        got.journal.record_fill(_fill(got.journal.last_seq + 1))
        writer.save_now()
    got.journal.close()
    assert (tmp_path / JOURNAL_FILE).is_file()
    assert len(list((tmp_path / SNAPSHOT_DIR).glob("snapshot-*.json"))) == cfg.snapshot_generations
    _, again = recover_state_dir(tmp_path, clock, generations=cfg.snapshot_generations)
    assert again.state == {"n": 1} and again.fills == () and again.report.clean
