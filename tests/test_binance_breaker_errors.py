"""Circuit breaker transitions on a FakeClock, and the HTTP status + code → kernel error table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import BreakerSettings
from core.clock import FakeClock
from core.errors import (
    AuthError,
    Banned,
    CircuitOpen,
    ClockSkew,
    RateLimited,
    Rejected,
    Retryable,
    UnknownOutcome,
)
from exchanges.binance.breaker import TRANSITIONS, BreakerBoard, BreakerState, CircuitBreaker
from exchanges.binance.errors import classify

NOW = 1_787_546_000_000


def _breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("orders", BreakerSettings(), clock)


async def test_breaker_full_cycle() -> None:
    clock = FakeClock(NOW)
    b = _breaker(clock)
    for _ in range(4):
        assert b.admit()
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.admit()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        b.admit()
    assert b.admit(protective=True) is False  # a stop still goes out, uncounted

    await clock.advance(59.9)
    assert b.state is BreakerState.OPEN
    await clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert [b.admit() for _ in range(3)] == [True, True, True]
    with pytest.raises(CircuitOpen):
        b.admit()  # only three probes
    b.record_success()
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN
    b.record_success()
    assert b.state is BreakerState.CLOSED


async def test_breaker_probe_failure_reopens_and_success_resets_count() -> None:
    clock = FakeClock(NOW)
    b = _breaker(clock)
    for _ in range(4):
        b.record_failure()
    b.record_success()  # consecutive failures only
    for _ in range(4):
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    await clock.advance(60)
    assert b.admit()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    board = BreakerBoard(BreakerSettings(), clock)
    assert board.states() == {g: BreakerState.CLOSED for g in ("orders", "account", "market_data")}


def test_transition_table_is_the_documented_cycle() -> None:
    assert set(TRANSITIONS.values()) == set(BreakerState)
    assert len(TRANSITIONS) == 4


# Expected kernel class for each body in fixtures/binance/errors/error_bodies.json.
EXPECTED: dict[int, type] = {
    -4120: Rejected, -2019: Rejected, -2021: Rejected, -2022: Rejected, -2013: Rejected, -2011: Rejected,
    -1021: ClockSkew, -1022: AuthError, -1003: RateLimited, -1008: Retryable, -4003: Rejected,
    -4014: Rejected, -4015: Rejected, -4164: Rejected, -5022: Rejected, -5021: Rejected, -4061: Rejected,
    -4131: Rejected, -1111: Rejected, -1102: Rejected, -1125: Rejected, -2015: AuthError, -4046: Rejected,
    -4059: Rejected, -4116: Rejected, -2027: Rejected,
}


def test_every_fixture_error_body_maps_to_the_right_kernel_error(fixtures_dir: Path) -> None:
    entries = json.loads((fixtures_dir / "errors" / "error_bodies.json").read_text())["errors"]
    assert len(entries) == 28
    for entry in entries:
        status, body = entry["http_status"], entry["body"]
        for is_write in (False, True):
            err = classify(status, json.dumps(body).encode(), {}, endpoint="/x", is_write=is_write, now_ms=NOW)
            expected = Banned if status == 418 else EXPECTED[body["code"]]
            assert type(err) is expected, (status, body, is_write)
            if isinstance(err, Rejected):
                assert (err.code, err.msg, err.http_status) == (body["code"], body["msg"], status)
    ban = classify(418, json.dumps(entries[10]["body"]).encode(), {}, endpoint="/x", is_write=False, now_ms=NOW)
    assert isinstance(ban, Banned) and ban.until_ms == 1787546698129  # the time Binance stated


def test_unknown_outcomes_only_for_writes() -> None:
    bodies = [
        (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}),
        (400, {"code": -1006, "msg": "An unexpected response was received from the message bus."}),
        (408, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
        (504, b"<html>Gateway Timeout</html>"),
    ]
    for status, body in bodies:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        write = classify(status, raw, {}, endpoint="/fapi/v1/order", is_write=True, now_ms=NOW, client_id="c1")
        read = classify(status, raw, {}, endpoint="/fapi/v1/order", is_write=False, now_ms=NOW)
        assert isinstance(write, UnknownOutcome) and write.client_id == "c1", status
        assert type(read) is Retryable, status
    for text in ("Service Unavailable.", "Internal error; unable to process your request. Please try again."):
        err = classify(503, json.dumps({"code": -1001, "msg": text}).encode(), {}, endpoint="/o", is_write=True, now_ms=NOW)
        assert type(err) is Retryable  # failed for sure: not an unknown outcome


def test_rate_limit_and_ban_read_retry_after() -> None:
    body = json.dumps({"code": -1003, "msg": "Too many requests"}).encode()
    err = classify(429, body, {"Retry-After": "12"}, endpoint="/x", is_write=False, now_ms=NOW)
    assert isinstance(err, RateLimited) and err.retry_after_s == 12
    ban = classify(418, b"", {"retry-after": "300"}, endpoint="/x", is_write=False, now_ms=NOW)
    assert isinstance(ban, Banned) and ban.until_ms == NOW + 300_000
    assert isinstance(classify(401, b"", {}, endpoint="/x", is_write=False, now_ms=NOW), AuthError)
