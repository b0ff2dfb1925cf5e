"""croupier.ids: deterministic, unique, parseable client ids inside Binance's rule."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from croupier.ids import (
    BINANCE_CLIENT_ID_RE,
    RESERVED_PREFIXES,
    ClientIdParts,
    Leg,
    bracket_id,
    build,
    client_id,
    is_casino_id,
    is_reserved,
    parse,
    session_tag,
)

tags = st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", min_size=6, max_size=6)
symbols = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=20)
parts_st = st.builds(
    ClientIdParts,
    tag=tags,
    symbol=symbols,
    bracket=st.integers(min_value=0, max_value=36**5),
    leg=st.sampled_from(Leg),
    attempt=st.integers(min_value=0, max_value=36**3),
)


def _fits(parts: ClientIdParts) -> bool:
    try:
        build(parts)
    except ValueError:
        return False
    return True


@given(parts_st)
def test_every_id_obeys_binance_and_parses_back(parts: ClientIdParts) -> None:
    assume(_fits(parts))
    value = build(parts)
    assert BINANCE_CLIENT_ID_RE.match(value) and len(value) <= 36
    assert not value.startswith(RESERVED_PREFIXES)
    assert parse(value) == parts
    assert value.startswith(bracket_id(parts.tag, parts.symbol, parts.bracket))
    assert build(parts) == value  # deterministic


@given(parts_st, parts_st)
def test_different_parts_never_share_an_id(a: ClientIdParts, b: ClientIdParts) -> None:
    assume(a != b and _fits(a) and _fits(b))
    assert build(a) != build(b)


@given(st.text(max_size=40))
def test_parse_never_accepts_what_build_would_not_produce(text: str) -> None:
    parts = parse(text)
    if parts is not None:
        assert build(parts) == text


def test_typical_symbols_leave_room_for_millions_of_brackets() -> None:
    for symbol in ("BTCUSDT", "1000SHIBUSDT", "BROCCOLI714USDT"):
        value = client_id("k3x9q0", symbol, 36**6 - 1, Leg.STOP_LOSS, 35)
        assert len(value) <= 36 and parse(value) == ClientIdParts("k3x9q0", symbol, 36**6 - 1, Leg.STOP_LOSS, 35)


def test_too_long_is_refused_not_truncated() -> None:
    with pytest.raises(ValueError, match="Binance allows 36"):
        client_id("k3x9q0", "A" * 20, 36**6, Leg.ENTRY, 36**2)


@pytest.mark.parametrize(
    ("tag", "symbol", "bracket", "attempt", "match"),
    [("K3X9Q0", "BTCUSDT", 1, 0, "session tag"), ("k3x9q", "BTCUSDT", 1, 0, "session tag"),
     ("k3x9q0", "btcusdt", 1, 0, "symbol"), ("k3x9q0", "BTC.USDT", 1, 0, "symbol"),
     ("k3x9q0", "BTCUSDT", -1, 0, "bracket"), ("k3x9q0", "BTCUSDT", 1, -1, "attempt")],
)
def test_bad_parts_are_refused(tag: str, symbol: str, bracket: int, attempt: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        client_id(tag, symbol, bracket, Leg.ENTRY, attempt)


def test_session_tags_are_stable_and_distinct() -> None:
    assert session_tag("2026-11-22T00:48Z-paper") == session_tag("2026-11-22T00:48Z-paper")
    tags_seen = {session_tag(f"session-{i}") for i in range(2000)}
    assert len(tags_seen) == 2000
    assert all(len(t) == 6 for t in tags_seen)
    with pytest.raises(ValueError):
        session_tag("")


def test_foreign_and_reserved_ids() -> None:
    ours = client_id("k3x9q0", "BTCUSDT", 7, Leg.TAKE_PROFIT, 1)
    assert is_casino_id(ours) and is_casino_id(ours, "k3x9q0") and not is_casino_id(ours, "zzzzzz")
    for foreign in ("autoclose-1234567890", "adl_autoclose", "settlement_autoclose-9999",
                    "delivery_autoclose-12345", "O-20250728-032001-LIVE-000-7", "web_abc"):
        assert parse(foreign) is None
    assert is_reserved("settlement_autoclose-9999") and not is_reserved(ours)
