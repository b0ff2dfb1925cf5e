"""Append-only JSON-lines journal: order intents, their outcomes, and what recovery replays.

Every line is one JSON object ``{"seq", "kind", "ts_ms", "data", "crc"}``; ``crc`` is the CRC-32
of the canonical bytes of the other fields, so a line damaged in the middle is recognised even
when it still parses. ``seq`` increases by one per entry and survives restarts and compaction
(the compacted file starts with a ``compacted`` line that carries the base).

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
import logging
import os
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ExchangeError, Rejected, StateError, UnknownOutcome
from core.ports import Clock
from core.types import AlgoOrderRequest, Fill, Income, OrderRequest
from state import codec
from state.snapshot import fsync_directory

log = logging.getLogger(__name__)

T = TypeVar("T")


class EntryKind(str, Enum):
    """What a journal line records."""

    INTENT = "INTENT"  # an order request about to leave (fsynced before it does)
    OUTCOME = "OUTCOME"  # what became of an intent
    TRANSITION = "TRANSITION"  # a bracket changed state (data: the bracket record after it)
    FILL = "FILL"  # a trade of ours (core.types.Fill), for the position tracker
    INCOME = "INCOME"  # funding or another income line (core.types.Income)
    COMPACTED = "COMPACTED"  # first line of a compacted file: entries up to data.through were dropped


class IntentAction(str, Enum):
    PLACE_ORDER = "PLACE_ORDER"
    PLACE_ALGO = "PLACE_ALGO"
    CANCEL_ORDER = "CANCEL_ORDER"
    CANCEL_ALGO = "CANCEL_ALGO"


class OutcomeStatus(str, Enum):
    """How an intent ended; only UNKNOWN leaves it pending."""

    ACCEPTED = "ACCEPTED"  # the exchange did it (order placed / cancel done)
    REJECTED = "REJECTED"  # the exchange said no, definitively
    NOT_SENT = "NOT_SENT"  # failed before taking effect (transient, banned, auth …)
    UNKNOWN = "UNKNOWN"  # may or may not have happened: resolve by client id

    @property
    def is_final(self) -> bool:
        return self is not OutcomeStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order action Casino is about to ask for. ``request`` is None for cancels."""

    action: IntentAction
    symbol: str
    client_id: str
    request: OrderRequest | AlgoOrderRequest | None = None
    bracket_id: str = ""
    leg: str = ""
    exchange_id: int | None = None  # cancels by exchange id
    created_ms: int = 0

    def __post_init__(self) -> None:
        placing = self.action in (IntentAction.PLACE_ORDER, IntentAction.PLACE_ALGO)
        if placing and self.request is None:
            raise ValueError(f"{self.action.value} needs a request")
        if not placing and self.request is not None:
            raise ValueError(f"{self.action.value} carries no request")
        if self.action is IntentAction.PLACE_ORDER and not isinstance(self.request, OrderRequest):
            raise ValueError("PLACE_ORDER needs an OrderRequest")
        if self.action is IntentAction.PLACE_ALGO and not isinstance(self.request, AlgoOrderRequest):
            raise ValueError("PLACE_ALGO needs an AlgoOrderRequest")
        if not self.client_id:
            raise ValueError("an intent needs the client id it acts on")


@dataclass(frozen=True, slots=True)
class JournaledIntent:
    """An intent that is durably on disk: the only thing ``Journal.submit`` lets a sender use."""

    seq: int
    intent: OrderIntent


@dataclass(frozen=True, slots=True)
class IntentOutcome:
    intent_seq: int
    client_id: str
    status: OutcomeStatus
    exchange_id: int | None = None
    code: int | None = None
    message: str = ""
    time_ms: int = 0


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One parsed line; ``data`` is JSON-safe (decode it with the helpers below)."""

    seq: int
    kind: EntryKind
    ts_ms: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be used: where, why, and the first bytes of it."""

    line_no: int
    offset: int
    reason: str
    preview: str
    torn: bool  # True for an unterminated last line (a crash mid-write)


@dataclass(frozen=True, slots=True)
class JournalScan:
    """Everything readable in a journal file, plus what was skipped."""

    entries: tuple[JournalEntry, ...]
    bad_lines: tuple[BadLine, ...]
    base_seq: int  # entries up to here were compacted away
    valid_length: int  # bytes up to the end of the last complete line
    size: int
    raw_lines: tuple[bytes, ...] = ()  # each entry's line as on disk (newline included)

    @property
    def last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else self.base_seq

    @property
    def torn_tail(self) -> BadLine | None:
        return next((b for b in self.bad_lines if b.torn), None)


# ------------------------------------------------------------------------ line format


_CRC_PREFIX = b'{"crc":"'
_CRC_END = 16  # len(_CRC_PREFIX) + 8 hex digits
_BODY_START = 18  # after '",'


def encode_line(seq: int, kind: EntryKind, ts_ms: int, data: dict[str, Any]) -> bytes:
    """One journal line: the canonical body with its CRC-32 spliced in as the first key.

    Keys are sorted, so ``crc`` always comes first and the rest of the line is byte for byte
    the body the checksum was computed over: a reader verifies it without re-serializing.
    """
    body = codec.dumps_plain({"seq": seq, "kind": kind.value, "ts_ms": ts_ms, "data": data})
    return b'%s%08x",%s\n' % (_CRC_PREFIX, zlib.crc32(body), body[1:])


def decode_line(raw: bytes) -> JournalEntry:
    """Parse one line (without its newline); StateError says what is wrong with it."""
    if not raw.startswith(_CRC_PREFIX) or raw[_CRC_END:_BODY_START] != b'",':
        raise StateError("no checksum at the start of the line")
    body = b"{" + raw[_BODY_START:]
    try:
        expected = int(raw[len(_CRC_PREFIX):_CRC_END], 16)
    except ValueError as exc:
        raise StateError("malformed checksum") from exc
    if zlib.crc32(body) != expected:
        raise StateError("checksum mismatch")
    doc = codec.loads(body)
    if not isinstance(doc, dict):
        raise StateError("not a JSON object")
    try:
        kind = EntryKind(doc["kind"])
    except (KeyError, ValueError) as exc:
        raise StateError(f"unknown entry kind {doc.get('kind')!r}") from exc
    seq, ts_ms, data = doc.get("seq"), doc.get("ts_ms"), doc.get("data")
    if not isinstance(seq, int) or not isinstance(ts_ms, int) or not isinstance(data, dict):
        raise StateError("seq, ts_ms or data missing")
    return JournalEntry(seq, kind, ts_ms, data)


def scan(path: Path) -> JournalScan:
    """Read every valid entry of ``path`` (missing file = empty journal)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JournalScan((), (), 0, 0, 0)
    entries: list[JournalEntry] = []
    raw_lines: list[bytes] = []
    bad: list[BadLine] = []
    base = 0
    offset = 0
    valid_length = 0
    line_no = 0
    while offset < len(raw):
        line_no += 1
        end = raw.find(b"\n", offset)
        terminated = end >= 0
        stop = end if terminated else len(raw)
        line = raw[offset:stop]
        if line.strip():
            try:
                entry = decode_line(line)
                if entries and entry.seq <= entries[-1].seq:
                    raise StateError(f"seq {entry.seq} does not follow {entries[-1].seq}")
            except StateError as exc:
                bad.append(BadLine(line_no, offset, str(exc), line[:120].decode("utf-8", "replace"), not terminated))
            else:
                if entry.kind is EntryKind.COMPACTED:
                    base = max(base, int(entry.data.get("through", entry.seq)))
                else:
                    entries.append(entry)
                    raw_lines.append(line + b"\n")
                if not terminated:  # complete entry whose newline never made it: keep it
                    valid_length = stop
        if terminated:
            valid_length = end + 1
            offset = end + 1
        else:
            break
    return JournalScan(tuple(entries), tuple(bad), base, valid_length, len(raw), tuple(raw_lines))


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
        """Append one entry (fsynced unless the journal was opened with fsync=False); returns its seq."""
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
            if self.fsync if sync is None else sync:
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
        return seq

    def record_intent(self, intent: OrderIntent) -> JournaledIntent:
        """Durably journal an intent; send the request only after this returns."""
        seq = self.append(EntryKind.INTENT, _encode_intent(intent), sync=True)
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
        ticket = self.record_intent(intent)
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
        return dropped

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ends_with_newline(fd: int, length: int) -> bool:
    return os.pread(fd, 1, length - 1) == b"\n"


# ---------------------------------------------------------------------- entry codecs


def _encode_intent(intent: OrderIntent) -> dict[str, Any]:
    data = codec.encode(intent)
    data["request"] = codec.encode_tagged(intent.request) if intent.request is not None else None
    return data


def encode_pending(ticket: JournaledIntent) -> dict[str, Any]:
    return {"seq": ticket.seq, "intent": _encode_intent(ticket.intent)}


def decode_pending(data: dict[str, Any]) -> JournaledIntent:
    return JournaledIntent(int(data["seq"]), _decode_intent_data(data["intent"]))


def _decode_intent_data(data: Any) -> OrderIntent:
    if not isinstance(data, dict):
        raise StateError(f"an intent must be an object, got {type(data).__name__}")
    extra = set(data) - _INTENT_FIELDS
    if extra:
        raise StateError(f"unknown intent fields {sorted(extra)}")
    raw_request = data.get("request")
    request = codec.decode_tagged(raw_request) if raw_request is not None else None
    try:
        return OrderIntent(
            action=codec.decode(IntentAction, data["action"], "$.action"),
            symbol=codec.decode(str, data["symbol"], "$.symbol"),
            client_id=codec.decode(str, data["client_id"], "$.client_id"),
            request=request,
            bracket_id=codec.decode(str, data.get("bracket_id", ""), "$.bracket_id"),
            leg=codec.decode(str, data.get("leg", ""), "$.leg"),
            exchange_id=codec.decode(int | None, data.get("exchange_id"), "$.exchange_id"),
            created_ms=codec.decode(int, data.get("created_ms", 0), "$.created_ms"),
        )
    except (KeyError, ValueError) as exc:
        raise StateError(f"invalid intent: {exc}") from exc


_INTENT_FIELDS = {"action", "symbol", "client_id", "request", "bracket_id", "leg", "exchange_id", "created_ms"}


def decode_intent(entry: JournalEntry) -> JournaledIntent:
    if entry.kind is not EntryKind.INTENT:
        raise StateError(f"entry {entry.seq} is a {entry.kind.value}, not an INTENT")
    return JournaledIntent(entry.seq, _decode_intent_data(entry.data))


def decode_outcome(entry: JournalEntry) -> IntentOutcome:
    if entry.kind is not EntryKind.OUTCOME:
        raise StateError(f"entry {entry.seq} is a {entry.kind.value}, not an OUTCOME")
    return codec.decode(IntentOutcome, entry.data)


def decode_fill(entry: JournalEntry) -> Fill:
    return codec.decode(Fill, entry.data)


def decode_income(entry: JournalEntry) -> Income:
    return codec.decode(Income, entry.data)
