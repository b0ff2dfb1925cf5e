"""Append-only JSON-lines journal: order intents, their outcomes, and what recovery replays.

The line format and the records live in ``state/journal_format.py`` (re-exported here). ``seq``
increases by one per entry and survives restarts and compaction (the compacted file starts
with a COMPACTED line that carries the base).

The write-ahead rule — an order's intent is durable before the request leaves — is built into
the API: ``Journal.submit(intent, call)`` appends the intent, fsyncs it, and only then hands the
journaled ticket to ``call`` (which sends it); the outcome is classified from the result or the
kernel error and journaled too. An intent whose outcome is not final (the request may or may
not have reached the exchange) stays *pending*: it is carried in every snapshot and returned
by recovery, to be resolved by client id against the exchange.

Reading tolerates a crash mid-write: a torn last line is skipped and reported (and cut off
before the next append, so it can never glue onto a new line); a damaged line elsewhere is
skipped and reported; nothing before it is lost. Compaction rewrites the file atomically
(tmp → fsync → replace → fsync dir) keeping only entries newer than what the snapshots hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ExchangeError, Rejected, StateError, UnknownOutcome
from core.ports import Clock
from core.types import Fill, Income
from state import codec
from state.journal_format import (
    BadLine,
    EntryKind,
    IntentAction,
    IntentOutcome,
    JournaledIntent,
    JournalEntry,
    JournalScan,
    OrderIntent,
    OutcomeStatus,
    decode_fill,
    decode_income,
    decode_intent,
    decode_line,
    decode_outcome,
    decode_pending,
    encode_intent,
    encode_line,
    encode_pending,
    scan,
)
from state.snapshot import fsync_directory

__all__ = [
    "BadLine", "EntryKind", "IntentAction", "IntentOutcome", "Journal", "JournalEntry", "JournalScan",
    "JournaledIntent", "OrderIntent", "OutcomeStatus", "decode_fill", "decode_income", "decode_intent",
    "decode_line", "decode_outcome", "decode_pending", "encode_line", "encode_pending", "scan",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


# --------------------------------------------------------------------------- journal


class Journal:
    """The append-only journal of one state directory. Not thread-safe: the engine is its only writer.

    Create it with ``Journal.open`` (which repairs a torn tail first), or through
    ``state.recovery.recover_local``, which also restores the pending intents.
    """

    def __init__(self, path: Path, clock: Clock, fd: int, *, fsync: bool = True) -> None:
        self.path = path
        self.clock = clock
        self.fsync = fsync
        self.last_scan: JournalScan | None = None
        self._fd = fd
        self._seq = 0
        self._base = 0
        self._lines: list[tuple[int, bytes]] = []
        self._pending: dict[int, JournaledIntent] = {}
        self._deferring = 0  # > 0 inside ``deferred_sync``: appends are written, not fsynced
        self._durable_seq = 0  # every entry up to this seq is fsynced
        # group commit (see ``append``): the fsync on the journal thread, the seq it covers
        self._sync_thread: ThreadPoolExecutor | None = None
        self._syncing: tuple[int, asyncio.Future[None]] | None = None

    @classmethod
    def open(cls, path: Path, clock: Clock, *, fsync: bool = True, min_seq: int = 0) -> Journal:
        """Open (creating if needed) for appending; a torn tail is reported and cut off first.

        ``min_seq`` (the newest snapshot's journal seq) keeps numbering ahead of everything a
        snapshot has reflected even when the file was lost or compacted empty.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        found = scan(path)
        for bad in found.bad_lines:
            log.error(
                "journal %s line %d (byte %d) skipped%s: %s — %r",
                path, bad.line_no, bad.offset, " (torn by a crash)" if bad.torn else "", bad.reason, bad.preview,
            )
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if found.size > found.valid_length:
            os.ftruncate(fd, found.valid_length)  # drop the torn tail so nothing glues onto it
        if found.valid_length and not _ends_with_newline(fd, found.valid_length):
            os.write(fd, b"\n")  # a complete last entry that lost only its newline
        if fsync:
            os.fsync(fd)
            if created:
                fsync_directory(path.parent)
        journal = cls(path, clock, fd, fsync=fsync)
        journal._seq = max(found.last_seq, min_seq)
        journal._base = found.base_seq
        journal._lines = [(e.seq, line) for e, line in zip(found.entries, found.raw_lines)]
        journal.last_scan = found
        journal._rebuild_pending(found.entries)
        return journal

    # -- state ------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def base_seq(self) -> int:
        return self._base

    def pending(self) -> list[JournaledIntent]:
        """Intents without a final outcome, oldest first."""
        return [self._pending[s] for s in sorted(self._pending)]

    def pending_document(self) -> list[dict[str, Any]]:
        """Pending intents as JSON-safe data (what a snapshot carries)."""
        return [encode_pending(t) for t in self.pending()]

    def set_pending(self, tickets: Iterable[JournaledIntent]) -> None:
        """Replace the pending set (recovery: snapshot's pending + replayed intents − outcomes)."""
        self._pending = {t.seq: t for t in tickets}

    def _rebuild_pending(self, entries: Iterable[JournalEntry]) -> None:
        for entry in entries:
            try:
                if entry.kind is EntryKind.INTENT:
                    ticket = decode_intent(entry)
                    self._pending[ticket.seq] = ticket
                elif entry.kind is EntryKind.OUTCOME:
                    outcome = decode_outcome(entry)
                    if outcome.status.is_final:
                        self._pending.pop(outcome.intent_seq, None)
            except StateError as exc:  # reported by recovery too; never fatal here
                log.error("journal %s entry %d unreadable: %s", self.path, entry.seq, exc)

    # -- appending ----------------------------------------------------------------------

    def append(self, kind: EntryKind, data: dict[str, Any], *, sync: bool | None = None) -> int:
        """Append one entry; returns its seq.

        The line is written at once (a process crash never loses it). Durability against a
        machine crash (unless the journal was opened with fsync=False): ``sync=True`` fsyncs
        before returning; by default, on an event loop, the fsync is *group-committed* on the
        journal's thread: one fsync covers every line written before it starts, and the loop
        goes on meanwhile (an fsync costs ~4 ms on a small VM, and a bracket's life journals
        ~10 facts: with 50 symbols they blocked the loop for seconds). ``durable(seq)`` waits
        for it. Without a running loop the default is the synchronous fsync. Facts arrive
        from the exchange, so one a machine crash lost in those few ms is found again by
        reconciliation; what must be durable before a request leaves (its intent) is
        awaited: ``submit``."""
        if self._fd < 0:
            raise StateError(f"journal {self.path} is closed")
        if kind is EntryKind.COMPACTED:
            raise StateError("COMPACTED lines are written by compact() only")
        seq = self._seq + 1
        line = encode_line(seq, kind, self.clock.now_ms(), data)
        size_before = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if sync:
                os.fsync(self._fd)
        except OSError as exc:
            # e.g. ENOSPC halfway through the line: take the partial line back so the next
            # append starts clean, and tell the caller the entry is NOT journaled.
            try:
                os.ftruncate(self._fd, size_before)
            except OSError:
                log.exception("journal %s: could not cut back a failed append", self.path)
            raise StateError(f"journal {self.path}: append of entry {seq} failed: {exc}") from exc
        self._seq = seq
        self._lines.append((seq, line))
        if sync:
            self._durable_seq = seq
        elif sync is None and self.fsync and not self._deferring:
            self._sync_soon()
        return seq

    def record_intent(self, intent: OrderIntent) -> JournaledIntent:
        """Durably journal an intent; send the request only after this returns."""
        seq = self.append(EntryKind.INTENT, encode_intent(intent), sync=True)
        ticket = JournaledIntent(seq, intent)
        self._pending[seq] = ticket
        return ticket

    def record_outcome(
        self,
        ticket: JournaledIntent,
        status: OutcomeStatus,
        *,
        exchange_id: int | None = None,
        code: int | None = None,
        message: str = "",
    ) -> IntentOutcome:
        """Journal what became of ``ticket``; a final status removes it from the pending set."""
        outcome = IntentOutcome(
            ticket.seq, ticket.intent.client_id, status, exchange_id, code, message[:500], self.clock.now_ms()
        )
        self.append(EntryKind.OUTCOME, codec.encode(outcome))
        if status.is_final:
            self._pending.pop(ticket.seq, None)
        return outcome

    def record_fill(self, fill: Fill) -> int:
        return self.append(EntryKind.FILL, codec.encode(fill))

    def record_income(self, income: Income) -> int:
        return self.append(EntryKind.INCOME, codec.encode(income))

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Appends inside are written but not fsynced; ``sync`` (or the next fsynced append,
        which syncs the whole file: every ``submit`` is one) makes them durable.

        For several brackets registered together (a burst's entries): their transitions need
        to be durable before anything of theirs leaves, not one fsync each (~4 ms apiece)
        before the next symbol can even be decided. Process crashes lose nothing either way
        (the lines are in the file); only a machine crash before the sync could, and then
        nothing of theirs had left."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def sync(self) -> None:
        """fsync what was appended without it, now (a journal opened with fsync=False is left as is)."""
        if self._durable_seq < self._seq and self.fsync and self._fd >= 0:
            os.fsync(self._fd)
            self._durable_seq = self._seq

    @property
    def durable_seq(self) -> int:
        """Every entry up to this seq is fsynced (or the journal does not fsync)."""
        return self._seq if not self.fsync else self._durable_seq

    async def durable(self, seq: int) -> None:
        """Wait, without blocking the loop, until entry ``seq`` is fsynced (group commit: an fsync
        in flight that started before ``seq`` was written does not count; the next one does).
        ``StateError`` if the fsync fails."""
        loop = asyncio.get_running_loop()
        while self.durable_seq < seq:
            if self._syncing is None:
                self._start_sync(loop)
            assert self._syncing is not None
            target, future = self._syncing
            if not future.done():
                with contextlib.suppress(OSError):  # raised below, from the accounted result
                    await asyncio.shield(future)
            # a done future's callback may not have run yet: awaiting it would not yield, so
            # account for it here (``_synced`` runs once per fsync either way)
            self._synced(loop, target, future)
            if not future.cancelled() and future.exception() is not None:
                raise StateError(f"journal {self.path}: fsync failed: {future.exception()}")

    def _sync_soon(self) -> None:
        """Group commit: an fsync on the journal thread covers this line (see ``append``)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller: durable before returning, as it always was
            self.sync()
            return
        if self._syncing is None:
            self._start_sync(loop)
        # else: the fsync in flight may have started before this line; when it lands, the
        # next one starts for whatever it did not cover (``_synced``)

    def _start_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sync_thread is None:
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="casino-journal")
        target = self._seq
        # a duplicate descriptor: compaction may close and replace ``_fd`` while this fsync runs
        # (the compacted file is fsynced by compaction itself)
        fd = os.dup(self._fd)
        future = loop.run_in_executor(self._sync_thread, _fsync_and_close, fd)
        self._syncing = (target, future)
        future.add_done_callback(lambda done: self._synced(loop, target, done))

    def _synced(self, loop: asyncio.AbstractEventLoop, target: int, future: asyncio.Future[None]) -> None:
        if self._syncing is None or self._syncing[1] is not future:
            return  # accounted for already (by ``durable`` or by this callback)
        self._syncing = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:  # waiters get it from durable(); the next append or sync tries again
            log.error("journal %s: fsync failed: %s", self.path, exc)
            return
        self._durable_seq = max(self._durable_seq, target)
        if self._durable_seq < self._seq and self._syncing is None and self._fd >= 0 and not self._deferring:
            self._start_sync(loop)

    def _wait_for_sync(self) -> None:
        """Block until an fsync in flight has finished (before the descriptor is closed)."""
        if self._sync_thread is not None:
            self._sync_thread.submit(lambda: None).result()  # the thread runs one task at a time, in order

    def record_transition(self, data: dict[str, Any]) -> int:
        """Journal a bracket transition (``data`` is already JSON-safe; the bracket sink builds it)."""
        return self.append(EntryKind.TRANSITION, data)

    async def submit(self, intent: OrderIntent, call: Callable[[JournaledIntent], Awaitable[T]]) -> T:
        """Journal ``intent`` (fsynced), then ``await call(ticket)``, then journal the outcome.

        The outcome is classified from the result or the kernel error: a returned record is
        ACCEPTED (its ``order_id``/``algo_id`` kept); ``Rejected`` is REJECTED; ``UnknownOutcome``,
        cancellation and unexpected errors are UNKNOWN (the intent stays pending); any other
        ``ExchangeError`` means the request took no effect (NOT_SENT). Errors are re-raised.
        """
        seq = self.append(EntryKind.INTENT, encode_intent(intent), sync=False)
        ticket = JournaledIntent(seq, intent)
        self._pending[seq] = ticket
        try:
            # the write-ahead rule: durable before the request leaves, waited for off the loop,
            # one fsync shared with every other line written meanwhile (a burst's orders)
            await self.durable(seq)
        except BaseException as exc:
            self.record_outcome(ticket, OutcomeStatus.NOT_SENT, message=f"not sent: {type(exc).__name__}: {exc}")
            raise
        try:
            result = await call(ticket)
        except Rejected as exc:
            self.record_outcome(ticket, OutcomeStatus.REJECTED, code=exc.code, message=exc.msg)
            raise
        except UnknownOutcome as exc:
            self.record_outcome(ticket, OutcomeStatus.UNKNOWN, message=str(exc))
            raise
        except ExchangeError as exc:
            self.record_outcome(ticket, OutcomeStatus.NOT_SENT, message=f"{type(exc).__name__}: {exc}")
            raise
        except asyncio.CancelledError:
            self.record_outcome(ticket, OutcomeStatus.UNKNOWN, message="cancelled while in flight")
            raise
        except Exception as exc:
            self.record_outcome(ticket, OutcomeStatus.UNKNOWN, message=f"{type(exc).__name__}: {exc}")
            raise
        exchange_id = getattr(result, "order_id", None) or getattr(result, "algo_id", None)
        self.record_outcome(
            ticket, OutcomeStatus.ACCEPTED, exchange_id=exchange_id if isinstance(exchange_id, int) else None
        )
        return result

    # -- compaction --------------------------------------------------------------------

    def compact(self, through_seq: int) -> int:
        """Atomically drop entries with seq ≤ ``through_seq``; returns how many were dropped."""
        if through_seq <= self._base:
            return 0
        if through_seq > self._seq:
            raise StateError(f"cannot compact through {through_seq}: the journal only reached {self._seq}")
        kept = [(s, line) for s, line in self._lines if s > through_seq]
        dropped = len(self._lines) - len(kept)
        header = encode_line(through_seq, EntryKind.COMPACTED, self.clock.now_ms(), {"through": through_seq})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            payload = memoryview(header + b"".join(line for _, line in kept))
            while payload:
                written = os.write(fd, payload)
                payload = payload[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_directory(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._lines = kept
        self._base = through_seq
        if self.fsync:
            self._durable_seq = self._seq  # the compacted file holds every kept line, fsynced
        return dropped

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            self._wait_for_sync()
            os.close(self._fd)
            self._fd = -1
        if self._sync_thread is not None:
            self._sync_thread.shutdown(wait=True)
            self._sync_thread = None


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(fd: int, length: int) -> bool:
    return os.pread(fd, 1, length - 1) == b"\n"
