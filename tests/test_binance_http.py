"""Transport behaviours against a loopback peer playing Binance: signing on the wire, unknown
outcomes, -1021 resync, 429/418, read retries, resets, breakers, header reconciliation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from config.settings import BreakerSettings, ExchangeSettings, RetrySettings
from core.clock import LiveClock
from core.errors import Banned, CircuitOpen, ClockSkew, Rejected, Retryable, UnknownOutcome
from exchanges.binance.http import BinanceHttp, NotSent
from exchanges.binance.limits import Lane
from exchanges.binance.rest import KLINES, NEW_ORDER, QUERY_ORDER, TIME
from exchanges.binance.signing import HmacSigner
from exchanges.binance.urls import BinanceUrls
from tests.binance_peer import peer

KEY, SECRET = "test-api-key-0001", "test-secret-0001"
SETTINGS = ExchangeSettings(
    request_timeout_s=0.5,
    retry=RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02),
    breaker=BreakerSettings(failure_threshold=5, open_s=60, half_open_probes=3, success_threshold=3),
)
ORDER = {"orderId": 7, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "c1", "price": "0",
         "origQty": "0.010", "executedQty": "0", "type": "MARKET", "side": "BUY", "updateTime": 1}


def _http(host: str) -> BinanceHttp:
    return BinanceHttp(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                       settings=SETTINGS, api_key=KEY, signer=HmacSigner(SECRET))


def _time(request: web.Request) -> web.Response:
    import time
    return web.json_response({"serverTime": int(time.time() * 1000)})


def _err(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


async def test_signed_post_carries_key_and_valid_signature_in_form_body() -> None:
    seen: list[dict[str, str]] = []

    async def order(request: web.Request) -> web.Response:
        body = await request.text()
        payload, _, signature = body.rpartition("&signature=")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if request.headers.get("X-MBX-APIKEY") != KEY or signature != expected:
            return _err(400, -1022, "Signature for this request is not valid.")
        seen.append(dict(parse_qsl(body)))
        return web.json_response(ORDER, headers={"X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1M": "11"})

    async with peer({("POST", "/fapi/v1/order"): order}) as host:
        http = _http(host)
        data = await http.request(NEW_ORDER, [("symbol", "BTCUSDT"), ("side", "BUY")], lane=Lane.ENTRY, client_id="c1")
        await http.close()
    assert data["orderId"] == 7
    assert seen[0]["symbol"] == "BTCUSDT" and seen[0]["recvWindow"] == "5000" and "timestamp" in seen[0]
    assert http.limiter.used("ORDERS_10S") == 3 and http.limiter.used("ORDERS_1M") == 11  # from the headers


async def test_timeout_after_send_is_unknown_outcome_and_never_resent() -> None:
    hits = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        await asyncio.sleep(0.8)  # longer than request_timeout_s
        return web.json_response(ORDER)

    async with peer({("POST", "/fapi/v1/order"): slow}) as host:
        http = _http(host)
        with pytest.raises(UnknownOutcome) as info:
            await http.request(NEW_ORDER, [("symbol", "BTCUSDT")], lane=Lane.ENTRY, client_id="c-42")
        await http.close()
    assert hits == 1 and info.value.client_id == "c-42"


async def test_503_unknown_error_on_write_is_unknown_outcome_but_read_retries() -> None:
    hits = {"POST": 0, "GET": 0}

    async def unknown(request: web.Request) -> web.Response:
        hits[request.method] += 1
        if request.method == "GET" and hits["GET"] == 3:
            return web.json_response(ORDER)
        return _err(503, -1000, "Unknown error, please check your request or try again later.")

    async with peer({("POST", "/fapi/v1/order"): unknown, ("GET", "/fapi/v1/order"): unknown}) as host:
        http = _http(host)
        with pytest.raises(UnknownOutcome):
            await http.request(NEW_ORDER, [("symbol", "BTCUSDT")], lane=Lane.ENTRY, client_id="c1")
        data = await http.request(QUERY_ORDER, [("symbol", "BTCUSDT"), ("origClientOrderId", "c1")])
        await http.close()
    assert hits == {"POST": 1, "GET": 3} and data["orderId"] == 7


async def test_minus_1021_resyncs_time_and_retries_once() -> None:
    calls = {"time": 0, "order": 0}
    fail_times = 1

    async def time_(request: web.Request) -> web.Response:
        calls["time"] += 1
        return _time(request)

    async def order(request: web.Request) -> web.Response:
        calls["order"] += 1
        if calls["order"] <= fail_times:
            return _err(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return web.json_response(ORDER)

    async with peer({("GET", "/fapi/v1/time"): time_, ("POST", "/fapi/v1/order"): order}) as host:
        http = _http(host)
        assert (await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY))["orderId"] == 7
        assert calls == {"time": SETTINGS.time_sync_samples, "order": 2}
        fail_times = 10
        with pytest.raises(ClockSkew):
            await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY)
        await http.close()
    assert calls["order"] == 4  # one retry only


async def test_429_retry_after_pauses_the_pool_then_the_read_succeeds() -> None:
    hits = 0

    async def klines(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits == 1:
            return _err(429, -1003, "Too many requests; current limit is 2400 requests per minute.",
                        {"Retry-After": "0.3"})
        return web.json_response([])

    async with peer({("GET", "/fapi/v1/klines"): klines}) as host:
        http = _http(host)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await http.request(KLINES, [("symbol", "X"), ("interval", "1m")]) == []
        waited = loop.time() - t0
        await http.close()
    assert hits == 2 and waited >= 0.29


async def test_418_bans_the_client_and_nothing_more_is_sent() -> None:
    hits = 0

    async def banned(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return _err(418, -1003, "Way too many requests; IP banned until 4102444800000. Please use the websocket.")

    async with peer({("GET", "/fapi/v1/time"): banned}) as host:
        http = _http(host)
        for _ in range(2):
            with pytest.raises(Banned) as info:
                await http.request(TIME)
            # the stated end, moved onto our clock by the measured server-time offset (a few ms here)
            assert abs(info.value.until_ms - 4102444800000) <= 50
        await http.close()
    assert hits == 1


async def test_reads_retried_on_5xx_and_1008_writes_not() -> None:
    hits = {"GET": 0, "POST": 0}

    async def flaky(request: web.Request) -> web.Response:
        hits[request.method] += 1
        if request.method == "GET" and hits["GET"] == 1:
            return web.Response(status=502, text="Bad Gateway")
        if request.method == "GET" and hits["GET"] == 2:
            return _err(503, -1008, "Request throttled by system-level protection.")
        if request.method == "GET":
            return web.json_response(ORDER)
        return _err(503, -1008, "Request throttled by system-level protection.")

    async with peer({("GET", "/fapi/v1/order"): flaky, ("POST", "/fapi/v1/order"): flaky}) as host:
        http = _http(host)
        assert (await http.request(QUERY_ORDER, [("symbol", "X"), ("orderId", "7")]))["orderId"] == 7
        with pytest.raises(Retryable) as info:
            await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY)
        await http.close()
    assert not isinstance(info.value, UnknownOutcome)
    assert hits == {"GET": 3, "POST": 1}


async def test_connection_reset_read_retried_write_unknown() -> None:
    hits = 0

    async def reset(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        assert request.transport is not None
        request.transport.close()  # the peer drops the connection after the request arrived
        await asyncio.sleep(0.05)
        return web.json_response({})

    async with peer({("GET", "/fapi/v1/order"): reset, ("POST", "/fapi/v1/order"): reset}) as host:
        http = _http(host)
        with pytest.raises(UnknownOutcome):
            await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY, client_id="c9")
        assert hits == 1
        with pytest.raises(Retryable):
            await http.request(QUERY_ORDER, [("symbol", "X"), ("orderId", "1")])
        await http.close()
    # Every read attempt reached the peer (aiohttp may itself re-send an idempotent GET once on a
    # dropped keep-alive connection, so at least max_attempts more hits); the write only once.
    assert hits >= 1 + SETTINGS.retry.max_attempts


async def test_connection_refused_is_not_sent_and_retried() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = _http(f"127.0.0.1:{port}")
    with pytest.raises(NotSent):
        await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY)
    await http.close()


async def test_breaker_opens_after_failures_and_fails_fast_except_protective() -> None:
    hits = 0

    async def broken(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=500, text="Internal error; unable to process your request.")

    async with peer({("GET", "/fapi/v1/order"): broken, ("POST", "/fapi/v1/order"): broken}) as host:
        http = _http(host)
        for _ in range(5):
            with pytest.raises(Retryable):
                await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY)
        assert hits == 5
        with pytest.raises(CircuitOpen):
            await http.request(NEW_ORDER, [("symbol", "X")], lane=Lane.ENTRY)
        assert hits == 5  # failed fast
        with pytest.raises(Retryable):
            await http.request(NEW_ORDER, [("symbol", "X"), ("reduceOnly", "true")], lane=Lane.PROTECT, protective=True)
        assert hits == 6  # the flatten still tried
        await http.close()


async def test_business_rejection_carries_code_and_message() -> None:
    async def reject(request: web.Request) -> web.Response:
        return _err(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")

    async with peer({("POST", "/fapi/v1/order"): reject}) as host:
        http = _http(host)
        with pytest.raises(Rejected) as info:
            await http.request(NEW_ORDER, [("symbol", "X"), ("type", "STOP_MARKET")], lane=Lane.PROTECT)
        await http.close()
    assert info.value.code == -4120 and "Algo Order API" in info.value.msg


async def test_cancellation_propagates() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.json_response({})

    async with peer({("GET", "/fapi/v1/time"): slow}) as host:
        http = _http(host)
        task = asyncio.create_task(http.request(TIME))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await http.close()
