"""Verification of Binance's request signing (HMAC-SHA256 and Ed25519) and timestamps.

Binance's rules (BINANCE.md §5): the API key travels in ``X-MBX-APIKEY``; SIGNED requests
carry ``timestamp`` and ``signature`` (last); the signed payload is the query string
concatenated with the form body, exactly as sent. HMAC signatures are hex (any case);
Ed25519 signatures are base64 (URL-encoded in the request). A request is in time when
``timestamp < server time + 1000`` and ``server time − timestamp ≤ recvWindow`` (default 5000,
at most 60000), else -1021.

Deliberate leniency: the timestamp is accepted when it is in time against EITHER the
simulated clock (what ``GET /fapi/v1/time`` returns; with a speed factor the windows are
real milliseconds, i.e. stretched by the speed) OR the real wall clock (what a client that
never syncs sends), so both kinds of client work at any speed factor. A timestamp wrong
against both gets -1021 as on Binance. A client that syncs an offset once and then counts
wall-clock time drifts away from a fast simulated clock and will see -1021 — as it would on
Binance with a drifting clock; resync on -1021 (or use ``SimServer.clock``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from exchanges.sim.errors import SimError, err

MAX_RECV_WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted API key: HMAC (``secret``) or Ed25519 (``public_key``)."""

    key: str
    secret: str | None = None
    public_key: Ed25519PublicKey | None = None

    def __repr__(self) -> str:  # never print secrets
        kind = "ed25519" if self.public_key else "hmac"
        return f"ApiKey({self.key[:6]}…, {kind})"


def ed25519_key(pem: bytes) -> Ed25519PublicKey:
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass
class KeyRing:
    keys: dict[str, ApiKey] = field(default_factory=dict)

    def add(self, key: ApiKey) -> None:
        self.keys[key.key] = key

    def lookup(self, api_key: str | None) -> ApiKey:
        if not api_key or api_key not in self.keys:
            raise err(-2015, http_status=401)
        return self.keys[api_key]


def split_signature(raw: str) -> tuple[str, str | None]:
    """(payload without the signature parameter, signature) of a raw query or body."""
    if not raw:
        return "", None
    marker = "signature="
    if raw.startswith(marker):
        return "", raw[len(marker):]
    idx = raw.rfind("&" + marker)
    if idx < 0:
        return raw, None
    return raw[:idx], raw[idx + 1 + len(marker):]


def verify_signature(key: ApiKey, query: str, body: str) -> None:
    """Raise -1022 unless the signature over query+body is valid for ``key``."""
    b_payload, b_sig = split_signature(body)
    if b_sig is not None:  # signature last in the body: totalParams = query + body
        payload, signature = query + b_payload, b_sig
    else:
        q_payload, q_sig = split_signature(query)
        if q_sig is None:
            raise err(-1102, "signature")
        payload, signature = q_payload + body, q_sig
    signature = unquote(signature)
    if key.public_key is not None:
        try:
            key.public_key.verify(base64.b64decode(signature, validate=True), payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise err(-1022) from None
        return
    assert key.secret is not None
    expected = hmac.new(key.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise err(-1022)


def check_timestamp(params: dict[str, str], references: tuple[tuple[int, float], ...]) -> None:
    """-1021 unless ``timestamp`` is within recvWindow of one of the reference clocks.

    Each reference is ``(now_ms, speed)``: on a clock running ``speed`` times faster than real
    time the allowed distances (1000 ms ahead, recvWindow behind) are real milliseconds, so they
    are stretched by ``speed`` — a client whose clock runs at the same speed (``server.clock``)
    is judged exactly as Binance judges a client on the wall clock.
    """
    raw_ts = params.get("timestamp")
    if raw_ts is None:
        raise err(-1102, "timestamp")
    try:
        ts = int(raw_ts)
        window = int(params.get("recvWindow", "5000"))
    except ValueError:
        raise err(-1130, "timestamp") from None
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise SimError(-1131, "recvWindow must be less than 60000")
    ahead = True
    for ref, speed in references:
        if ts < ref + 1000 * speed and ref - ts <= window * speed:
            return
        ahead = ahead and ts >= ref + 1000 * speed
    if ahead:
        raise SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    raise err(-1021)
