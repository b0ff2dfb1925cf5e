"""Deterministic client order ids: the same bracket leg always gets the same id.

Layout (every part recoverable by ``parse``)::

    c <tag:6> <SYMBOL> . <bracket> <LEG> <attempt>
    c k3x9q0 BTCUSDT   . 1z      S     0          →  "ck3x9q0BTCUSDT.1zS0"

* ``c`` — Casino's marker. Binance reserves client ids starting with ``autoclose-``,
  ``adl_autoclose``, ``settlement_autoclose-`` and ``delivery_autoclose-`` for its own
  liquidation/ADL/delisting orders; ours can never start like that.
* ``tag`` — six lowercase base-36 characters naming the session (``session_tag(name)`` hashes
  a session name into one), so two sessions on one account never collide and reconciliation
  can tell Casino's orders from anyone else's.
* ``SYMBOL`` — upper-case, as Binance spells it; the ``.`` ends it.
* ``bracket`` — the bracket number in lowercase base 36; ``LEG`` — one upper-case letter
  (which also ends the number); ``attempt`` — lowercase base 36.

Binance's rule is ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` (else -4015). With a 20-character symbol
(the longest the config accepts) 7 characters remain for bracket + attempt; ``build`` raises
``ValueError`` rather than truncate, because a truncated id would no longer be unique.
Determinism is the point: after a crash, the id of the order Casino *would* have sent is known,
so an intent with an unknown outcome is resolved by querying that id (never by resending).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

BINANCE_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
MAX_LEN = 36
RESERVED_PREFIXES = ("autoclose-", "adl_autoclose", "settlement_autoclose-", "delivery_autoclose-")
MARKER = "c"
TAG_LEN = 6

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TAG_RE = re.compile(r"^[0-9a-z]{6}$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
_ID_RE = re.compile(r"^c([0-9a-z]{6})([A-Z0-9]{2,20})\.(0|[1-9a-z][0-9a-z]*)([A-Z])(0|[1-9a-z][0-9a-z]*)$")


class Leg(str, Enum):
    """Which order of a bracket an id belongs to (one letter on the wire)."""

    ENTRY = "E"
    STOP_LOSS = "S"
    TAKE_PROFIT = "T"
    FLATTEN = "F"


@dataclass(frozen=True, slots=True)
class ClientIdParts:
    """The parts a client id is made of."""

    tag: str
    symbol: str
    bracket: int
    leg: Leg
    attempt: int = 0


def session_tag(session_name: str) -> str:
    """Six base-36 characters derived from a session name (stable across processes)."""
    if not session_name:
        raise ValueError("session name must not be empty")
    number = int.from_bytes(hashlib.blake2b(session_name.encode(), digest_size=8).digest(), "big")
    return _base36(number % 36**TAG_LEN).rjust(TAG_LEN, "0")


def bracket_id(tag: str, symbol: str, bracket: int) -> str:
    """The id of a bracket: the common prefix of all its legs' client ids."""
    _check_tag(tag)
    _check_symbol(symbol)
    if bracket < 0:
        raise ValueError(f"bracket number must be ≥ 0, got {bracket}")
    return f"{MARKER}{tag}{symbol}.{_base36(bracket)}"


def build(parts: ClientIdParts) -> str:
    """The client id for ``parts``; ValueError if it would break Binance's rule."""
    if parts.attempt < 0:
        raise ValueError(f"attempt must be ≥ 0, got {parts.attempt}")
    client_id = f"{bracket_id(parts.tag, parts.symbol, parts.bracket)}{parts.leg.value}{_base36(parts.attempt)}"
    if len(client_id) > MAX_LEN:
        raise ValueError(
            f"client id {client_id!r} would be {len(client_id)} characters (Binance allows {MAX_LEN}): "
            f"bracket {parts.bracket} / attempt {parts.attempt} too large for symbol {parts.symbol}"
        )
    if client_id.startswith(RESERVED_PREFIXES) or not BINANCE_CLIENT_ID_RE.match(client_id):
        raise ValueError(f"client id {client_id!r} breaks Binance's client id rule")
    return client_id


def client_id(tag: str, symbol: str, bracket: int, leg: Leg, attempt: int = 0) -> str:
    """Shorthand for ``build(ClientIdParts(...))``."""
    return build(ClientIdParts(tag, symbol, bracket, leg, attempt))


def parse(value: str) -> ClientIdParts | None:
    """The parts of a Casino client id, or None for any other id (another bot, Binance's own)."""
    match = _ID_RE.match(value)
    if match is None:
        return None
    tag, symbol, bracket, leg, attempt = match.groups()
    return ClientIdParts(tag, symbol, int(bracket, 36), Leg(leg), int(attempt, 36))


def is_casino_id(value: str, tag: str | None = None) -> bool:
    """True for ids Casino generates (of the given session, when ``tag`` is set)."""
    parts = parse(value)
    return parts is not None and (tag is None or parts.tag == tag)


def is_reserved(value: str) -> bool:
    """True for ids Binance uses for its own orders (liquidation, ADL, settlement, delivery)."""
    return value.startswith(RESERVED_PREFIXES)


def _base36(number: int) -> str:
    if number == 0:
        return "0"
    digits = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_B36[rem])
    return "".join(reversed(digits))


def _check_tag(tag: str) -> None:
    if not _TAG_RE.match(tag):
        raise ValueError(f"session tag must be 6 characters of [0-9a-z], got {tag!r}")


def _check_symbol(symbol: str) -> None:
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol must be 2-20 characters of [A-Z0-9], got {symbol!r}")
