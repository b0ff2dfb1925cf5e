"""Every injected fault of the simulated exchange, over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from exchanges.sim.feed import SymbolData, load_symbol_data
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue
from tests.sim_client import BinanceTestClient
from tests.test_sim_server import KEY, SECRET, Frames

MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010", "newOrderRespType": "RESULT"}


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return {"BTCUSDT": load_symbol_data(data_dir / "futures-2023", "BTCUSDT")}


@pytest.fixture
async def server(recorded: dict[str, SymbolData]):
    srv = SimServer(Venue(recorded, warmup_bars=300), api_key=KEY, api_secret=SECRET, admin=True)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: SimServer):
    c = BinanceTestClient(server.rest_url, KEY, SECRET)
    await c.sync_time()
    yield c
    await c.close()


async def order_status(client: BinanceTestClient, cid: str) -> str:
    _, body = await client.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": cid}, signed=True)
    return body.get("status") or str(body.get("code"))


@pytest.mark.parametrize(("mode", "status", "code"), [("503", 503, -1000), ("-1007", 408, -1007)])
async def test_lost_response_still_applies_the_order(server, client, mode, status, code) -> None:
    server.faults.lose_response("/fapi/v1/order", mode=mode, method="POST")
    got, body = await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "lost-1"}, signed=True)
    assert (got, body["code"]) == (status, code)
    if mode == "503":
        assert body["msg"] == "Unknown error, please check your request or try again later."
    assert await order_status(client, "lost-1") == "FILLED"


async def test_timeout_drops_the_connection_after_applying(server, client) -> None:
    server.faults.lose_response("/fapi/v1/order", mode="timeout", delay_s=0.2)
    with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
        await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "lost-2"}, signed=True)
    assert await order_status(client, "lost-2") == "FILLED"


async def test_delayed_response_outlives_a_short_client_timeout(server, client) -> None:
    server.faults.delay_response("/fapi/v1/order", 0.5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "late-1"}, signed=True)
    assert await order_status(client, "late-1") == "FILLED"


async def test_failures_do_not_apply_and_1008_spares_reduce_only(server, client) -> None:
    server.faults.fail("/fapi/v1/order", status="502", method="POST")
    got, _ = await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "f-1"}, signed=True)
    assert got == 502 and await order_status(client, "f-1") == "-2013"
    await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "f-2"}, signed=True)
    server.faults.fail("/fapi/v1/order", status="-1008", method="POST")
    exit_ = {**MARKET, "side": "SELL", "reduceOnly": "true", "newClientOrderId": "f-3"}
    got, body = await client.request("POST", "/fapi/v1/order", exit_, signed=True)
    assert got == 200 and body["status"] == "FILLED"  # exempt, fault not consumed
    got, body = await client.request("POST", "/fapi/v1/order", {**MARKET, "newClientOrderId": "f-4"}, signed=True)
    assert (got, body["code"]) == (503, -1008) and await order_status(client, "f-4") == "-2013"


async def test_forced_429_and_418(server, client) -> None:
    server.faults.force_rate_limit()
    got, body = await client.request("GET", "/fapi/v1/ping")
    assert (got, body["code"]) == (429, -1003) and "retry-after" in client.last_headers
    server.faults.force_ban(300)
    got, body = await client.request("GET", "/fapi/v1/ping")
    assert got == 418 and "banned until" in body["msg"] and int(client.last_headers["retry-after"]) > 200
    got, _ = await client.request("GET", "/fapi/v1/time")
    assert got == 418  # still banned


async def test_clock_skew_makes_unsynced_clients_fail_1021(server, client) -> None:
    server.faults.skew_clock(120_000)
    got, body = await client.request("GET", "/fapi/v2/balance", signed=True)
    assert (got, body["code"]) == (400, -1021)
    await client.sync_time()
    got, _ = await client.request("GET", "/fapi/v2/balance", signed=True)
    assert got == 200


async def test_listen_key_expiry_and_dropped_websockets(server, client) -> None:
    _, key = await client.request("POST", "/fapi/v1/listenKey", key=True)
    async with aiohttp.ClientSession() as session:
        private = Frames(await session.ws_connect(f"{server.ws_url}/private/ws?listenKey={key['listenKey']}"))
        market = Frames(await session.ws_connect(f"{server.ws_url}/market/ws/btcusdt@kline_1m"))
        await asyncio.sleep(0.05)
        server.faults.expire_listen_key()
        await server.advance(0.001)
        await private.wait_for(lambda f: f.get("e") == "listenKeyExpired")
        got, body = await client.request("PUT", "/fapi/v1/listenKey", key=True)
        assert body["code"] == -1125
        server.faults.drop_websockets()
        await server.advance(0.001)
        await asyncio.wait_for(market.task, 10)
        assert market.ws.closed


async def test_reject_next_algo_and_split_fills(server, client) -> None:
    _, key = await client.request("POST", "/fapi/v1/listenKey", key=True)
    async with aiohttp.ClientSession() as session:
        private = Frames(await session.ws_connect(f"{server.ws_url}/private/ws?listenKey={key['listenKey']}"))
        await asyncio.sleep(0.05)
        server.faults.split_fills_into(3)
        await client.request("POST", "/fapi/v1/order", MARKET, signed=True)
        await private.wait_for(lambda f: f.get("e") == "ORDER_TRADE_UPDATE" and f["o"]["X"] == "FILLED")
        trades = [f for f in private.items if f.get("e") == "ORDER_TRADE_UPDATE" and f["o"]["x"] == "TRADE"]
        assert [t["o"]["X"] for t in trades] == ["PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
        server.faults.reject_next_algo()
        _, prem = await client.request("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
        trigger = f"{float(prem['markPrice']) * 0.9:.1f}"
        got, algo = await client.request("POST", "/fapi/v1/algoOrder", {
            "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
            "triggerPrice": trigger, "closePosition": "true"}, signed=True)
        assert got == 200
        rejected = await private.wait_for(lambda f: f.get("e") == "ALGO_UPDATE" and f["o"]["X"] == "REJECTED")
        assert rejected["o"]["rm"] and rejected["o"]["aid"] == algo["algoId"]
        await private.close()


async def test_admin_endpoint_only_when_enabled(server, client, recorded) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.rest_url}/sim/admin/fault",
                                json={"fault": "fail", "endpoint": "/fapi/v1/ping", "status": "500"}) as r:
            assert r.status == 200
        async with session.post(f"{server.rest_url}/sim/admin/fault", json={"fault": "nonsense"}) as r:
            assert r.status == 400 and "unknown fault" in (await r.json())["error"]
        got, _ = await client.request("GET", "/fapi/v1/ping")
        assert got == 500
        plain = SimServer(Venue(recorded, warmup_bars=300), api_key=KEY, api_secret=SECRET)
        await plain.start()
        try:
            async with session.post(f"{plain.rest_url}/sim/admin/fault", data=json.dumps({"fault": "force_429"})) as r:
                assert r.status in (404, 405)
        finally:
            await plain.stop()
