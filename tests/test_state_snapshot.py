"""state.snapshot: atomic generations, newest valid wins, corrupt ones skipped loudly, writer cadence."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from core.clock import FakeClock
from core.errors import StateError
from core.ports import SnapshotStore
from state import codec
from state.journal import EntryKind, Journal
from state.snapshot import FileSnapshotStore, SnapshotWriter

D = Decimal


def test_implements_the_port_and_round_trips(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path, generations=3, clock=FakeClock(1000))
    assert isinstance(store, SnapshotStore)
    assert store.load_latest() is None
    path = store.save({"balance": D("10.10"), "n": 1})
    state, loaded_path = store.load_latest()  # type: ignore[misc]
    assert loaded_path == path and state == {"balance": "10.10", "n": 1}
    envelope = orjson.loads(path.read_bytes())
    assert envelope["schema_version"] == codec.SCHEMA_VERSION and envelope["created_ms"] == 1000
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_file_is_the_canonical_dump_of_the_whole_envelope(tmp_path: Path) -> None:
    # Written in pieces (head, state bytes): byte for byte what dumping the envelope at once gives.
    import hashlib

    store = FileSnapshotStore(tmp_path, clock=FakeClock(1_700_000_000_123))
    document = {"zeta": [1.5, -0.1, None], "balance": D("10.10"), "nested": {"b": "é", "a": [[1, "x"]]}}
    path = store.save(document)
    state = codec.encode(document)
    envelope = {"format": "casino-snapshot", "schema_version": codec.SCHEMA_VERSION, "seq": 1,
                "created_ms": 1_700_000_000_123, "sha256": hashlib.sha256(codec.dumps_plain(state)).hexdigest(),
                "state": state}
    assert path.read_bytes() == codec.dumps_plain(envelope)
    assert store.load_latest() == (state, path)


def test_keeps_only_the_newest_generations(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path, generations=3)
    for i in range(7):
        store.save({"i": i})
    names = [p.name for p in store.generation_paths()]
    assert names == ["snapshot-000000000007.json", "snapshot-000000000006.json", "snapshot-000000000005.json"]
    # numbering continues in a new process
    assert FileSnapshotStore(tmp_path, generations=3).save({"i": 7}).name == "snapshot-000000000008.json"


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "garbage", "wrong_seq"])
def test_a_damaged_newest_generation_is_skipped_and_named(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileSnapshotStore(tmp_path, generations=5)
    store.save({"i": 1, "price": D("1.5")})
    newest = store.save({"i": 2, "price": D("2.5")})
    raw = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        newest.write_bytes(b"")
    elif damage == "flip":  # still valid JSON, different content: only the checksum notices
        newest.write_bytes(raw.replace(b'"2.5"', b'"9.5"'))
    elif damage == "garbage":
        newest.write_bytes(b"\x00" * 64)
    else:
        doc = orjson.loads(raw)
        doc["seq"] = 99
        newest.write_bytes(orjson.dumps(doc))
    with caplog.at_level(logging.ERROR):
        report = FileSnapshotStore(tmp_path, generations=5).load_latest_report()
    assert report.found and report.state == {"i": 1, "price": "1.5"}
    assert [s.path for s in report.skipped] == [newest]
    assert newest.name in caplog.text


def test_all_corrupt_means_no_snapshot_but_a_full_report(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path, generations=5)
    for i in range(2):
        store.save({"i": i}).write_bytes(b"{")
    report = store.load_latest_report()
    assert not report.found and len(report.skipped) == 2
    assert store.load_latest() is None


def test_a_newer_schema_is_refused_not_skipped(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    store.save({"i": 1})
    newest = store.save({"i": 2})
    doc = orjson.loads(newest.read_bytes())
    doc["schema_version"] = codec.SCHEMA_VERSION + 1
    newest.write_bytes(orjson.dumps(doc))
    with pytest.raises(StateError, match="newer than this build"):
        store.load_latest_report()


def test_stale_temp_files_from_a_crash_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".snapshot-000000000003.json.tmp").write_bytes(b'{"half')
    store = FileSnapshotStore(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    assert store.load_latest() is None


def test_writer_saves_when_dirty_for_the_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    state = {"n": 0}
    writer = SnapshotWriter(FileSnapshotStore(tmp_path), lambda: dict(state), clock, interval_s=5.0)
    assert writer.maybe_save() is None  # clean: nothing to do
    writer.mark_dirty()
    clock.set_ms(clock.now_ms() + 4_999)
    assert writer.maybe_save() is None
    state["n"] = 1
    clock.set_ms(clock.now_ms() + 1)
    path = writer.maybe_save()
    assert path is not None and not writer.dirty
    assert orjson.loads(path.read_bytes())["state"] == {"n": 1}
    clock.set_ms(clock.now_ms() + 60_000)
    assert writer.maybe_save() is None  # nothing changed since


async def test_writer_loop_saves_within_the_interval(tmp_path: Path) -> None:
    import asyncio

    clock = FakeClock()
    store = FileSnapshotStore(tmp_path)
    writer = SnapshotWriter(store, lambda: {"x": 1}, clock, interval_s=5.0)
    task = asyncio.create_task(writer.run())
    try:
        await clock.advance(0)
        writer.mark_dirty()
        for _ in range(4):
            await clock.advance(1.25)
        writer.flush()  # the loop's save is written on the writer thread
        assert writer.saves == 1 and not writer.dirty
        for _ in range(8):
            await clock.advance(1.25)
        writer.flush()
        assert writer.saves == 1  # not dirty: no rewrite
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_writer_records_the_journal_and_compacts_to_the_oldest_generation(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Journal.open(tmp_path / "journal.jsonl", clock)
    store = FileSnapshotStore(tmp_path / "snaps", generations=2)
    writer = SnapshotWriter(store, lambda: {"k": "v"}, clock, interval_s=5.0, journal=journal)
    with pytest.raises(StateError, match="reserved key"):
        SnapshotWriter(store, lambda: {"journal": 1}, clock, 5.0, journal).save_now()
    seqs = [journal.append(EntryKind.FILL, {"n": i}) for i in range(3)]
    first = writer.save_now()
    assert orjson.loads(first.read_bytes())["state"]["journal"] == {"seq": seqs[-1], "pending": []}
    assert journal.base_seq == seqs[-1]  # only generation: everything it reflects is dropped
    more = [journal.append(EntryKind.FILL, {"n": i}) for i in range(3)]
    writer.save_now()
    # two generations kept: the older one reflects up to seqs[-1], so only that much may go
    assert journal.base_seq == seqs[-1]
    writer.save_now()
    assert journal.base_seq == more[-1]


def test_a_replaced_journal_behind_old_snapshots_does_not_break_saving(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileSnapshotStore(tmp_path / "snaps", generations=3)
    old = Journal.open(tmp_path / "old.jsonl", clock, min_seq=50)
    SnapshotWriter(store, lambda: {"k": 1}, clock, 5.0, old).save_now()  # a generation marked 50
    fresh = Journal.open(tmp_path / "new.jsonl", clock)  # e.g. the journal file was removed
    fresh.append(EntryKind.FILL, {})
    SnapshotWriter(store, lambda: {"k": 2}, clock, 5.0, fresh).save_now()
    assert fresh.base_seq == 1 and fresh.last_seq == 1


async def test_background_saves_capture_the_instant_and_coalesce_while_one_is_in_flight(tmp_path: Path) -> None:
    import asyncio
    import threading

    clock = FakeClock()
    journal = Journal.open(tmp_path / "journal.jsonl", clock)
    store = FileSnapshotStore(tmp_path / "snaps", generations=10)
    state = {"n": 0}
    gate = threading.Event()
    write = store.write

    def slow_write(prepared):  # type: ignore[no-untyped-def]
        gate.wait(5)
        return write(prepared)

    store.write = slow_write  # type: ignore[method-assign]
    writer = SnapshotWriter(store, lambda: dict(state), clock, interval_s=5.0, journal=journal)
    journal.append(EntryKind.FILL, {"n": 0})
    writer.save_in_background()  # state n=0, journal seq 1, held at the gate
    assert writer.writing and writer.saves == 0
    state["n"] = 1
    journal.append(EntryKind.FILL, {"n": 1})
    for _ in range(5):  # requests while the first write is in flight: one more save, of the state then
        writer.save_in_background()
    state["n"] = 2
    assert not store.generation_paths() and journal.base_seq == 0  # nothing landed: nothing compacted
    gate.set()
    for _ in range(200):
        await asyncio.sleep(0.005)
        if writer.saves == 2 and not writer.writing:
            break
    paths = store.generation_paths()
    assert writer.saves == 2 and len(paths) == 2
    newest, first = (orjson.loads(p.read_bytes())["state"] for p in paths)
    assert first["n"] == 0 and first["journal"]["seq"] == 1  # the state of the instant it was asked for
    assert newest["n"] == 2 and newest["journal"]["seq"] == 2  # the coalesced save: the state when it started
    assert journal.base_seq == 1  # compacted once landed, to what the older generation reflects
    writer.close()


async def test_a_failed_background_save_leaves_the_state_dirty_and_the_next_save_writes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    clock = FakeClock()
    store = FileSnapshotStore(tmp_path)
    write = store.write
    fail = [True]

    def flaky_write(prepared):  # type: ignore[no-untyped-def]
        if fail[0]:
            raise OSError(28, "No space left on device")
        return write(prepared)

    store.write = flaky_write  # type: ignore[method-assign]
    writer = SnapshotWriter(store, lambda: {"x": 1}, clock, interval_s=5.0)
    writer.mark_dirty()
    with caplog.at_level(logging.ERROR, logger="state.snapshot"):
        writer.save_in_background()
        for _ in range(200):
            await asyncio.sleep(0.005)
            if not writer.writing:
                break
    assert writer.failed_background_saves == 1 and writer.dirty and writer.saves == 0
    assert "No space left on device" in caplog.text
    fail[0] = False
    path = writer.save_now()
    assert writer.saves == 1 and not writer.dirty and orjson.loads(path.read_bytes())["state"] == {"x": 1}
    writer.close()


def _counter_writer(tmp_path: Path) -> tuple[FileSnapshotStore, dict[str, int], SnapshotWriter]:
    """A writer snapshotting a counter (``state["n"]``), for the ordering tests below."""
    store = FileSnapshotStore(tmp_path)
    state = {"n": 0}
    return store, state, SnapshotWriter(store, lambda: dict(state), FakeClock(), interval_s=5.0)


def _counters(store: FileSnapshotStore) -> list[int]:
    """The counter in each generation on disk, newest first."""
    return [orjson.loads(p.read_bytes())["state"]["n"] for p in store.generation_paths()]


async def test_save_now_waits_for_a_background_write_so_generations_land_in_order(tmp_path: Path) -> None:
    store, state, writer = _counter_writer(tmp_path)
    writer.save_in_background()
    state["n"] = 1
    path = writer.save_now()  # blocks until the first write landed, then writes its own
    assert not writer.writing and writer.saves == 2
    assert _counters(store) == [1, 0]
    assert path == store.generation_paths()[0]
    writer.close()


def test_without_an_event_loop_a_background_save_is_written_at_once(tmp_path: Path) -> None:
    writer = SnapshotWriter(FileSnapshotStore(tmp_path), lambda: {"x": 2}, FakeClock(), interval_s=5.0)
    writer.save_in_background()
    assert writer.saves == 1 and not writer.writing


def test_the_journal_is_compacted_only_once_enough_entries_can_go(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Journal.open(tmp_path / "journal.jsonl", clock)
    store = FileSnapshotStore(tmp_path / "snaps", generations=1)
    writer = SnapshotWriter(store, lambda: {"k": "v"}, clock, interval_s=5.0, journal=journal, compact_min_entries=5)
    seqs = [journal.append(EntryKind.FILL, {"n": i}) for i in range(4)]
    writer.save_now()
    assert journal.base_seq == 0  # 4 reflected entries: kept for now (recovery skips them)
    seqs += [journal.append(EntryKind.FILL, {"n": i}) for i in range(2)]
    path = writer.save_now()
    assert journal.base_seq == seqs[-1]  # 6 ≥ 5: rewritten without them
    with pytest.raises(ValueError, match="compact_min_entries"):
        SnapshotWriter(store, lambda: {}, clock, interval_s=5.0, compact_min_entries=0)
    assert orjson.loads(path.read_bytes())["state"]["journal"]["seq"] == seqs[-1]


async def test_save_now_after_coalesced_requests_writes_once_and_leaves_nothing_in_flight(tmp_path: Path) -> None:
    store, state, writer = _counter_writer(tmp_path)
    writer.save_in_background()
    state["n"] = 1
    writer.save_in_background()  # coalesced behind the first
    state["n"] = 2
    writer.save_now()  # covers the coalesced request: no third write starts beside it
    assert not writer.writing and writer.saves == 2
    assert _counters(store) == [2, 0]
    writer.close()
