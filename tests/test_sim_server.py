"""The simulated Binance over real loopback sockets, driven by a client written from BINANCE.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from decimal import Decimal as D
from pathlib import Path

import aiohttp
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exchanges.sim.feed import SymbolData, load_symbol_data
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue
from tests.sim_client import BinanceTestClient

KEY, SECRET = "simkey", "simsecret"


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return {s: load_symbol_data(data_dir / "futures-2023", s) for s in ("BTCUSDT", "ETHUSDT")}


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


class Frames:
    """Reads websocket frames in the background (an aiohttp or a ``websockets`` connection)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.items: list[dict] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        if isinstance(self.ws, aiohttp.ClientWebSocketResponse):
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.items.append(json.loads(msg.data))
        else:  # the websockets library: iteration ends when the server closes
            with contextlib.suppress(websockets.ConnectionClosed):
                async for text in self.ws:
                    self.items.append(json.loads(text))

    async def wait_for(self, pred, timeout_s: float = 10.0) -> dict:
        async with asyncio.timeout(timeout_s):
            while True:
                for item in self.items:
                    if pred(item):
                        return item
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def test_binance_md_client_trades_a_protected_position(server: SimServer, client: BinanceTestClient) -> None:
    status, info = await client.request("GET", "/fapi/v1/exchangeInfo")
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    tick = D(next(f for f in btc["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"])
    _, key = await client.request("POST", "/fapi/v1/listenKey", key=True)
    # The user stream through the `websockets` library, the REST calls through aiohttp.
    async with websockets.connect(f"{server.ws_url}/private/ws?listenKey={key['listenKey']}") as ws:
        frames = Frames(ws)
        _, prem = await client.request("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
        mark = D(prem["markPrice"])
        status, body = await client.request("POST", "/fapi/v1/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.010",
            "price": str((mark * D("1.001") / tick).quantize(D(1)) * tick)}, signed=True)
        assert (status, body["code"]) == (400, -5022)
        status, body = await client.request("POST", "/fapi/v1/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010",
            "newClientOrderId": "entry-1", "newOrderRespType": "RESULT"}, signed=True)
        assert status == 200 and body["status"] == "FILLED" and body["executedQty"] == "0.010"
        assert client.last_headers["x-mbx-order-count-10s"] == "2"
        await frames.wait_for(lambda f: f["e"] == "ORDER_TRADE_UPDATE" and f["o"]["X"] == "FILLED")
        await frames.wait_for(lambda f: f["e"] == "ACCOUNT_UPDATE" and f["a"]["P"][0]["pa"] == "0.010")
        stop = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                "triggerPrice": str((mark * D("0.9995") / tick).quantize(D(1)) * tick), "closePosition": "true",
                "workingType": "MARK_PRICE", "clientAlgoId": "sl-1"}
        status, body = await client.request("POST", "/fapi/v1/order", {**stop, "algoType": None}, signed=True)
        assert (status, body["code"]) == (400, -4120)
        assert body["msg"] == "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
        status, algo = await client.request("POST", "/fapi/v1/algoOrder", stop, signed=True)
        assert status == 200 and algo["algoStatus"] == "NEW"
        await frames.wait_for(lambda f: f["e"] == "ALGO_UPDATE" and f["o"]["X"] == "NEW")
        status, body = await client.request("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "sl-1"},
                                            signed=True)
        assert body["code"] == -2013
        for _ in range(600):
            await server.advance(60)
            await client.sync_time()  # simulated time jumped: resync the offset as after -1021
            status, risk = await client.request("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}, signed=True)
            if not risk:
                break
        assert risk == []
        for state in ("TRIGGERING", "TRIGGERED", "FINISHED"):
            await frames.wait_for(lambda f, s=state: f["e"] == "ALGO_UPDATE" and f["o"]["X"] == s)
        _, account = await client.request("GET", "/fapi/v3/account", signed=True)
        _, incomes = await client.request("GET", "/fapi/v1/income", {"limit": 1000}, signed=True)
        assert D(account["totalWalletBalance"]) == D(10000) + sum(D(i["income"]) for i in incomes)
        _, done = await client.request("GET", "/fapi/v1/algoOrder", {"algoId": algo["algoId"]}, signed=True)
        assert done["algoStatus"] == "FINISHED" and done["actualOrderId"] != ""
        await frames.close()


async def test_signature_key_and_timestamp_errors(server: SimServer, client: BinanceTestClient) -> None:
    bad = BinanceTestClient(server.rest_url, KEY, "wrong-secret")
    try:
        status, body = await bad.request("GET", "/fapi/v3/account", signed=True)
        assert (status, body["code"]) == (400, -1022)
    finally:
        await bad.close()
    unknown = BinanceTestClient(server.rest_url, "nobody", SECRET)
    try:
        status, body = await unknown.request("GET", "/fapi/v3/account", signed=True)
        assert (status, body["code"]) == (401, -2015)
    finally:
        await unknown.close()
    status, body = await client.request("GET", "/fapi/v3/account", signed=True, timestamp_ms=1_000)
    assert (status, body["code"]) == (400, -1021)
    status, body = await client.request("GET", "/fapi/v3/account", signed=True, in_body=False)
    assert status == 200 and "x-mbx-used-weight-1m" in client.last_headers
    status, body = await client.request("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 7},
                                        signed=True, in_body=True)
    assert status == 200 and body == {"leverage": 7, "maxNotionalValue": "1000000000", "symbol": "BTCUSDT"}


async def test_ed25519_signed_requests(recorded: dict[str, SymbolData]) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    srv = SimServer(Venue(recorded, warmup_bars=300), api_key=KEY, api_secret=SECRET, ed25519_keys={"edkey": pem})
    await srv.start()
    c = BinanceTestClient(srv.rest_url, "edkey", ed25519_private=private)
    try:
        await c.sync_time()
        status, body = await c.request("GET", "/fapi/v2/balance", signed=True)
        assert status == 200 and body[0]["asset"] == "USDT"
        other = BinanceTestClient(srv.rest_url, "edkey", ed25519_private=Ed25519PrivateKey.generate())
        other.offset_ms = c.offset_ms
        status, body = await other.request("GET", "/fapi/v2/balance", signed=True)
        await other.close()
        assert body["code"] == -1022
    finally:
        await c.close()
        await srv.stop()


async def test_weights_then_429_then_418(server: SimServer, client: BinanceTestClient) -> None:
    server.limiter.weight_limit = 12
    server.limiter.now_ms = lambda: 1_700_000_010_000  # a fixed instant: no window rolls over mid-test
    for expected in (5, 10):
        status, _ = await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 500})
        assert status == 200 and client.last_headers["x-mbx-used-weight-1m"] == str(expected)
    statuses = []
    for _ in range(5):
        status, body = await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 500})
        statuses.append(status)
        if status == 429:
            assert body["code"] == -1003 and int(client.last_headers["retry-after"]) >= 1
    assert statuses[:3] == [429, 429, 429] and statuses[3] == 418
    assert "IP banned until" in body["msg"] and int(client.last_headers["retry-after"]) >= 60


async def test_klines_history_and_pagination(server: SimServer, client: BinanceTestClient) -> None:
    status, rows = await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 50})
    assert status == 200 and len(rows) == 50
    assert all(r[0] < server.venue.now_ms for r in rows) and isinstance(rows[0][1], str)
    first = rows[0][0]
    _, page = await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m",
                                                              "startTime": first, "limit": 10})
    assert [r[0] for r in page] == [first + 60_000 * i for i in range(10)]
    used = int(client.last_headers["x-mbx-used-weight-1m"])
    await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 1000})
    assert int(client.last_headers["x-mbx-used-weight-1m"]) in (used + 5, 5)  # 5 unless the minute rolled


async def test_market_streams_routes_and_subscriptions(server: SimServer) -> None:
    async with aiohttp.ClientSession() as session:
        combined = Frames(await session.ws_connect(f"{server.ws_url}/market/stream?streams=btcusdt@kline_1m/btcusdt@markPrice@1s"))
        wrong = Frames(await session.ws_connect(f"{server.ws_url}/public/ws/btcusdt@kline_1m"))
        raw = Frames(await session.ws_connect(f"{server.ws_url}/market/ws"))
        await raw.ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 7}))
        await raw.wait_for(lambda f: f.get("id") == 7 and f["result"] is None)
        await raw.ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
        listed = await raw.wait_for(lambda f: f.get("id") == 8)
        assert listed["result"] == ["ethusdt@aggtrade"]
        await wrong.ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice"], "id": 1}))
        await wrong.wait_for(lambda f: f.get("id") == 1)
        await asyncio.sleep(0.05)
        await server.advance(120)
        closed = await combined.wait_for(lambda f: f["stream"] == "btcusdt@kline_1m" and f["data"]["k"]["x"])
        assert closed["data"]["k"]["T"] == closed["data"]["k"]["t"] + 59_999
        await combined.wait_for(lambda f: f["stream"] == "btcusdt@kline_1m" and not f["data"]["k"]["x"])
        await combined.wait_for(lambda f: f["stream"] == "btcusdt@markprice@1s" and f["data"]["e"] == "markPriceUpdate")
        await raw.wait_for(lambda f: f.get("e") == "aggTrade" and f["s"] == "ETHUSDT")
        await asyncio.sleep(0.05)
        assert [f for f in wrong.items if "e" in f] == []  # acknowledged but silent
        for f in (combined, wrong, raw):
            await f.close()


async def test_listen_key_lifecycle_and_24h_disconnect(server: SimServer, client: BinanceTestClient) -> None:
    status, body = await client.request("PUT", "/fapi/v1/listenKey", key=True)
    assert (status, body["code"]) == (400, -1125)
    _, first = await client.request("POST", "/fapi/v1/listenKey", key=True)
    _, again = await client.request("POST", "/fapi/v1/listenKey", key=True)
    assert first == again
    async with aiohttp.ClientSession() as session:
        ws = Frames(await session.ws_connect(f"{server.ws_url}/private/ws?listenKey={first['listenKey']}"))
        await asyncio.sleep(0.05)
        await server.advance(61 * 60)  # no keepalive for 61 simulated minutes
        expired = await ws.wait_for(lambda f: f.get("e") == "listenKeyExpired")
        assert isinstance(expired["E"], int) and expired["listenKey"] == first["listenKey"]
        await asyncio.wait_for(ws.task, 10)
        _, fresh = await client.request("POST", "/fapi/v1/listenKey", key=True)
        assert fresh["listenKey"] != first["listenKey"]
        market = Frames(await session.ws_connect(f"{server.ws_url}/market/ws/btcusdt@kline_1m"))
        await asyncio.sleep(0.05)
        await server.advance(24 * 3600)
        await asyncio.wait_for(market.task, 5)  # the server closed it after 24 simulated hours
        assert market.ws.closed


async def test_more_than_ten_messages_per_second_disconnects(server: SimServer) -> None:
    async with aiohttp.ClientSession() as session:
        frames = Frames(await session.ws_connect(f"{server.ws_url}/market/ws"))
        for i in range(12):
            await frames.ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        await asyncio.wait_for(frames.task, 10)
        assert frames.ws.closed and len([f for f in frames.items if "id" in f]) <= 10


async def test_speed_factor_clock_drives_streams_without_stepping(recorded: dict[str, SymbolData]) -> None:
    srv = SimServer(Venue(recorded, warmup_bars=300), api_key=KEY, api_secret=SECRET, speed=1200)
    await srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            frames = Frames(await session.ws_connect(f"{srv.ws_url}/market/ws/ethusdt@kline_1m"))
            closed = await frames.wait_for(lambda f: f.get("e") == "kline" and f["k"]["x"], timeout_s=10)
            assert closed["k"]["s"] == "ETHUSDT" and srv.clock.now_ms() >= closed["k"]["T"]
            await frames.close()
    finally:
        await srv.stop()


async def test_batch_orders_and_open_order_listings(server: SimServer, client: BinanceTestClient) -> None:
    _, prem = await client.request("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
    low = f"{float(prem['markPrice']) * 0.98:.1f}"
    batch = [
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010", "price": low,
         "newClientOrderId": "b-1"},
        {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.010", "stopPrice": low},
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0101", "price": low},
    ]
    status, body = await client.request("POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps(batch)}, signed=True)
    assert status == 200 and body[0]["clientOrderId"] == "b-1"
    assert body[1]["code"] == -4120 and body[2]["code"] == -1111
    _, opened = await client.request("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, signed=True)
    assert [o["clientOrderId"] for o in opened] == ["b-1"]
    _, one = await client.request("GET", "/fapi/v1/openOrder", {"symbol": "BTCUSDT", "origClientOrderId": "b-1"},
                                  signed=True)
    assert one["orderId"] == opened[0]["orderId"]
    _, second = await client.request("POST", "/fapi/v1/order", {**batch[0], "newClientOrderId": "b-2"}, signed=True)
    _, cancelled = await client.request("DELETE", "/fapi/v1/batchOrders", {
        "symbol": "BTCUSDT", "orderIdList": json.dumps([second["orderId"], 1])}, signed=True)
    assert cancelled[0]["status"] == "CANCELED" and cancelled[1]["code"] == -2011
    algo = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "type": "TAKE_PROFIT_MARKET",
            "triggerPrice": low, "quantity": "0.010"}
    _, placed = await client.request("POST", "/fapi/v1/algoOrder", algo, signed=True)
    _, open_algos = await client.request("GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"}, signed=True)
    assert [a["algoId"] for a in open_algos] == [placed["algoId"]]
    _, body = await client.request("DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"}, signed=True)
    assert body == {"code": 200, "msg": "The operation of cancel all open order is done."}
    _, every = await client.request("GET", "/fapi/v1/allAlgoOrders", {"symbol": "BTCUSDT"}, signed=True)
    assert [a["algoStatus"] for a in every] == ["CANCELED"]
    _, body = await client.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"}, signed=True)
    _, opened = await client.request("GET", "/fapi/v1/openOrders", signed=True)
    assert opened == [] and client.last_headers["x-mbx-used-weight-1m"]
    status, body = await client.request("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "CROSSED"},
                                        signed=True)
    assert (status, body["code"]) == (400, -4046)
    status, body = await client.request("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"}, signed=True)
    assert (status, body["code"]) == (400, -4059)


async def test_server_sends_pings(recorded: dict[str, SymbolData]) -> None:
    srv = SimServer(Venue(recorded, warmup_bars=300), api_key=KEY, api_secret=SECRET, ping_interval_s=0.05)
    await srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{srv.ws_url}/market/ws/btcusdt@kline_1m", autoping=False)
            msg = await ws.receive(timeout=3)
            assert msg.type is aiohttp.WSMsgType.PING
            await ws.pong(msg.data)
            await ws.close()
    finally:
        await srv.stop()


def test_timestamp_windows_are_real_milliseconds_on_a_fast_clock() -> None:
    from exchanges.sim.auth import check_timestamp
    from exchanges.sim.errors import SimError

    sim_now = 1_689_000_000_000
    # 60× clock: 100 real ms of latency are 6 simulated seconds, still inside recvWindow=5000.
    check_timestamp({"timestamp": str(sim_now - 6_000)}, ((sim_now, 60.0),))
    with pytest.raises(SimError) as behind:
        check_timestamp({"timestamp": str(sim_now - 6_000)}, ((sim_now, 1.0),))
    assert behind.value.code == -1021 and "recvWindow" in behind.value.msg
    with pytest.raises(SimError) as ahead:
        check_timestamp({"timestamp": str(sim_now + 1_000)}, ((sim_now, 1.0),))
    assert "1000ms ahead" in ahead.value.msg


async def test_higher_interval_klines_stream_progress_and_close(server: SimServer, client: BinanceTestClient) -> None:
    async with aiohttp.ClientSession() as session:
        frames = Frames(await session.ws_connect(f"{server.ws_url}/market/ws/btcusdt@kline_5m"))
        await asyncio.sleep(0.05)
        await server.advance(11 * 60)
        closed = await frames.wait_for(lambda f: f.get("e") == "kline" and f["k"]["x"])
        k = closed["k"]
        assert k["i"] == "5m" and k["t"] % 300_000 == 0 and k["T"] == k["t"] + 299_999
        _, rest_rows = await client.request("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "5m",
                                                                       "startTime": k["t"], "limit": 1})
        assert rest_rows[0][1:5] == [k["o"], k["h"], k["l"], k["c"]]  # stream and REST agree
        live = [f for f in frames.items if f.get("e") == "kline" and not f["k"]["x"]]
        assert live and all(f["k"]["i"] == "5m" and f["k"]["t"] % 300_000 == 0 for f in live)
        await frames.close()
