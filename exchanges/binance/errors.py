"""The one table from Binance's HTTP status + error code to Casino's kernel errors.

Every failed response passes through ``classify``; nothing else in the connector inspects
codes or messages. Whether the request was a write matters: a timeout on a read is just
Retryable, the same timeout on an order means the order may exist (UnknownOutcome).

Sources: BINANCE.md §4 (statuses, the three 503 texts) and §8 (codes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum

import orjson

from core.errors import (
    AuthError,
    Banned,
    ClockSkew,
    ExchangeError,
    RateLimited,
    Rejected,
    Retryable,
    UnknownOutcome,
)


class Kind(Enum):
    """What a failure means for the bot."""

    REJECTED = "rejected"  # definitive no
    AUTH = "auth"  # key / signature / permission
    RETRY = "retry"  # failed for sure, transient
    UNKNOWN = "unknown"  # a write may have happened (reads: retry)
    CLOCK = "clock"  # -1021
    RATE_LIMIT = "rate_limit"  # 429
    BAN = "ban"  # 418


# Binance error code → kind. Codes not listed here are definitive rejections.
CODE_KINDS: dict[int, Kind] = {
    -1003: Kind.RATE_LIMIT,  # TOO_MANY_REQUESTS (the HTTP status decides 429 vs 418)
    -1006: Kind.UNKNOWN,  # UNEXPECTED_RESP: execution status unknown
    -1007: Kind.UNKNOWN,  # TIMEOUT waiting for backend: execution status unknown
    -1008: Kind.RETRY,  # server overloaded / throttled: the request failed
    -1021: Kind.CLOCK,  # INVALID_TIMESTAMP
    -1022: Kind.AUTH,  # INVALID_SIGNATURE
    -2014: Kind.AUTH,  # BAD_API_KEY_FMT
    -2015: Kind.AUTH,  # REJECTED_MBX_KEY (key, IP or permissions)
}

# HTTP status → kind, used when the body carries no (known) code.
STATUS_KINDS: dict[int, Kind] = {
    401: Kind.AUTH,
    403: Kind.REJECTED,  # WAF violation: the request itself is refused
    408: Kind.UNKNOWN,  # backend timeout: sent, outcome unknown
    418: Kind.BAN,
    429: Kind.RATE_LIMIT,
    500: Kind.RETRY,  # "Internal error; unable to process your request" = failed
    502: Kind.RETRY,
    503: Kind.RETRY,  # "Service Unavailable." = failed (the "Unknown error" text is UNKNOWN)
    504: Kind.UNKNOWN,  # gateway timeout: the backend may have processed it
}

# 503 "Unknown error, please check your request or try again later." = execution status unknown.
_UNKNOWN_503 = re.compile(r"^\s*unknown error", re.IGNORECASE)
_BANNED_UNTIL = re.compile(r"banned until (\d{10,})")


def parse_body(body: bytes) -> tuple[int | None, str]:
    """Binance's ``{"code": -2019, "msg": "…"}`` → (code, msg); tolerant of non-JSON bodies."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        code = data.get("code")
        try:
            code_int = int(code) if code is not None else None
        except (TypeError, ValueError):
            code_int = None
        return code_int, str(data.get("msg", ""))
    return None, body[:200].decode("utf-8", "replace").strip()


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header in seconds, if present and numeric (case-insensitive)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def kind_of(status: int, code: int | None, msg: str) -> Kind:
    """The table lookup: status decides bans and rate limits, then the code, then the status."""
    if status == 418:
        return Kind.BAN
    if status == 429:
        return Kind.RATE_LIMIT
    if status == 503 and _UNKNOWN_503.match(msg):
        return Kind.UNKNOWN
    if code is not None and code in CODE_KINDS:
        return CODE_KINDS[code]
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    if status >= 500:
        return Kind.RETRY
    return Kind.REJECTED


def classify(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    is_write: bool,
    now_ms: int,
    client_id: str | None = None,
) -> ExchangeError:
    """Build the kernel exception for a failed response."""
    code, msg = parse_body(body)
    kind = kind_of(status, code, msg)
    shown = f"HTTP {status} {code if code is not None else ''} {msg}".strip()
    if kind is Kind.BAN:
        until = _BANNED_UNTIL.search(msg)
        wait = retry_after_s(headers)
        if until:
            until_ms = int(until.group(1))
        else:
            # No stated time: Retry-After, else Binance's shortest ban (2 min).
            until_ms = now_ms + int((wait if wait is not None else 120.0) * 1000)
        return Banned(f"IP banned until {until_ms} ({shown})", until_ms=until_ms, endpoint=endpoint)
    if kind is Kind.RATE_LIMIT:
        wait = retry_after_s(headers)
        return RateLimited(shown, retry_after_s=wait if wait is not None else -1.0, endpoint=endpoint)
    if kind is Kind.CLOCK:
        return ClockSkew(shown, endpoint=endpoint)
    if kind is Kind.AUTH:
        return AuthError(shown, code=code, endpoint=endpoint)
    if kind is Kind.UNKNOWN:
        if is_write:
            return UnknownOutcome(shown, client_id=client_id, endpoint=endpoint)
        return Retryable(shown, endpoint=endpoint)
    if kind is Kind.RETRY:
        return Retryable(shown, endpoint=endpoint)
    return Rejected(code if code is not None else 0, msg or shown, endpoint=endpoint, http_status=status)
