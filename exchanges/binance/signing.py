"""Request signing for SIGNED (TRADE / USER_DATA) endpoints.

Binance signs ``totalParams`` = query string concatenated with the form body (BINANCE.md §5),
with ``signature`` appended last. HMAC-SHA256 gives a hex digest; Ed25519 gives a base64
signature that must be URL-encoded (``+`` ``/`` ``=`` are significant in a query string).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from core.errors import ConfigError


class Signer(Protocol):
    """Turns the exact payload string into the value of the ``signature`` parameter."""

    def sign(self, payload: str) -> str: ...


class HmacSigner:
    """HMAC-SHA256 with the API secret; lowercase hex digest."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("HMAC signing needs a non-empty API secret", key="CASINO_API_SECRET")
        self._secret = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(***)"


class Ed25519Signer:
    """Ed25519 over the payload; base64, then URL-encoded for the query/body string."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, pem: bytes) -> Ed25519Signer:
        """Load a PKCS#8 PEM private key (unencrypted)."""
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"Ed25519 key is not a readable PKCS#8 PEM key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"key file holds a {type(key).__name__}, not an Ed25519 private key")
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Signer:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read Ed25519 key file {path}: {exc.strerror}") from None
        return cls.from_pem(pem)

    def sign(self, payload: str) -> str:
        raw = base64.b64encode(self._key.sign(payload.encode())).decode()
        return quote(raw, safe="")

    def __repr__(self) -> str:
        return "Ed25519Signer(***)"


def encode_params(params: Iterable[tuple[str, str]]) -> str:
    """URL-encode parameters in the given order (the order the signature covers)."""
    return urlencode(list(params))


def signed_payload(params: Iterable[tuple[str, str]], signer: Signer) -> str:
    """``a=1&b=2&signature=<sig>`` — signature last, computed over everything before it."""
    payload = encode_params(params)
    return f"{payload}&signature={signer.sign(payload)}"
