"""The journal's vocabulary and line format: records, one-line encoding, and a tolerant reader.

Every line is one JSON object ``{"crc", "data", "kind", "seq", "ts_ms"}`` (keys sorted); ``crc``
is the CRC-32 of the line's other bytes, so a line damaged in the middle is recognised even when
it still parses. ``scan`` reads a whole file, keeping every valid entry and reporting (never
raising on) a torn last line or a damaged one elsewhere. ``state.journal`` writes these lines.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from core.errors import StateError
from core.types import AlgoOrderRequest, Fill, Income, OrderRequest
from state import codec


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


# ---------------------------------------------------------------------- entry codecs


def encode_intent(intent: OrderIntent) -> dict[str, Any]:
    data = codec.encode(intent)
    data["request"] = codec.encode_tagged(intent.request) if intent.request is not None else None
    return data


def encode_pending(ticket: JournaledIntent) -> dict[str, Any]:
    return {"seq": ticket.seq, "intent": encode_intent(ticket.intent)}


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
