"""Signing: the documented HMAC vector byte for byte; Ed25519 sign → verify round trip."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from core.errors import ConfigError
from exchanges.binance.signing import Ed25519Signer, HmacSigner, signed_payload

# BINANCE.md §5 (Binance General Info examples 1 & 2).
SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
PAYLOAD = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_hmac_reproduces_documented_vector() -> None:
    assert HmacSigner(SECRET).sign(PAYLOAD) == SIGNATURE


def test_signed_payload_encodes_in_order_and_appends_signature_last() -> None:
    params = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("quantity", "1"), ("price", "9000"),
              ("timeInForce", "GTC"), ("recvWindow", "5000"), ("timestamp", "1591702613943")]
    assert signed_payload(params, HmacSigner(SECRET)) == f"{PAYLOAD}&signature={SIGNATURE}"


def test_hmac_needs_a_secret() -> None:
    with pytest.raises(ConfigError):
        HmacSigner("")


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def test_ed25519_round_trip_with_generated_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(key))
    signer = Ed25519Signer.from_file(path)

    signature = signer.sign(PAYLOAD)

    # URL-encoded base64: no raw '+', '/', '=' may remain in the query string.
    assert not set("+/=") & set(signature)
    raw = base64.b64decode(unquote(signature))
    key.public_key().verify(raw, PAYLOAD.encode())  # raises InvalidSignature on mismatch
    # A full signed payload parses back to the same signature.
    parsed = dict(parse_qsl(signed_payload([("a", "1")], signer)))
    key.public_key().verify(base64.b64decode(parsed["signature"]), b"a=1")


def test_ed25519_refuses_other_key_types(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    pem = generate_private_key(SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(ConfigError, match="not an Ed25519"):
        Ed25519Signer.from_pem(pem)
    with pytest.raises(ConfigError, match="PKCS#8"):
        Ed25519Signer.from_pem(b"garbage")
