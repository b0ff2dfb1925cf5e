"""Stream connection management against a loopback peer playing Binance: market reconnect with
REST backfill (exactly the missed candles, deduplicated), StreamGap when backfill fails, user
stream listenKey expiry → new key + ReconcileNeeded, keepalive -1125 → renewal."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal as D
from typing import Any

from aiohttp import WSMsgType, web

from config.settings import ExchangeSettings, RetrySettings
from core.clock import LiveClock
from core.events import AlgoUpdate, CandleClosed, MarkPriceUpdate, OrderUpdate, ReconcileNeeded, StreamGap
from core.types import Timeframe
from exchanges.binance.client import BinanceFutures
from exchanges.binance.urls import BinanceUrls
from config.secrets import Secrets
from tests.binance_peer import peer

SETTINGS = ExchangeSettings(ws_reconnect_max_delay_s=0.05, request_timeout_s=1.0,
                            retry=RetrySettings(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02))
MIN = 60_000


def _bars() -> list[int]:
    now = int(time.time() * 1000)
    last_closed = now - now % MIN - MIN
    return [last_closed - (9 - i) * MIN for i in range(10)]  # b0 … b9 (b9 = newest closed bar)


def _kline_frame(open_ms: int, closed: bool = True, close: str = "100.0") -> str:
    k = {"t": open_ms, "T": open_ms + MIN - 1, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2, "o": "99.0",
         "c": close, "h": "101.0", "l": "98.0", "v": "5", "n": 3, "x": closed, "q": "500", "V": "2", "Q": "200", "B": "0"}
    return json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": open_ms + MIN, "s": "BTCUSDT", "k": k}})


def _rest_row(open_ms: int) -> list[Any]:
    return [open_ms, "99.0", "101.0", "98.0", "100.5", "5", open_ms + MIN - 1, "500", 3, "2", "200", "0"]


def _client(host: str, secrets: Secrets | None = None) -> BinanceFutures:
    return BinanceFutures(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                          settings=SETTINGS, secrets=secrets)


async def _collect(agen: Any, until: Any, timeout_s: float = 5.0) -> list[Any]:
    out: list[Any] = []
    async with asyncio.timeout(timeout_s):
        async for event in agen:
            out.append(event)
            if until(out):
                break
    await agen.aclose()
    return out


async def test_market_reconnect_backfills_exactly_the_missed_candles() -> None:
    bars = _bars()
    connections = 0
    kline_queries: list[dict[str, str]] = []

    async def market(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        assert request.query["streams"] == "btcusdt@kline_1m/btcusdt@markprice@1s"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if connections == 1:
            await ws.send_str(_kline_frame(bars[0]))
            await ws.send_str(_kline_frame(bars[1], closed=False))  # in progress: never emitted
            await ws.send_str("{not json")  # malformed: logged, counted, skipped
            await ws.send_str(_kline_frame(bars[1]))
            await ws.send_str(json.dumps({"stream": "btcusdt@markPrice@1s", "data": {
                "e": "markPriceUpdate", "E": bars[1], "s": "BTCUSDT", "p": "100.1", "i": "100.0",
                "P": "100", "r": "0.0001", "T": bars[1] + 8 * 3600_000}}))
            await ws.close()  # the drop
        else:
            await ws.send_str(_kline_frame(bars[8]))  # already backfilled: deduplicated
            await ws.send_str(_kline_frame(bars[9]))
            async for _ in ws:  # hold the connection until the client leaves
                pass
        return ws

    async def klines(request: web.Request) -> web.Response:
        q = dict(request.query)
        kline_queries.append(q)
        start, end = int(q["startTime"]), int(q.get("endTime", 2**62))
        return web.json_response([_rest_row(b) for b in bars if start <= b <= end])

    async with peer({("GET", "/market/stream"): market, ("GET", "/fapi/v1/klines"): klines,
                     ("GET", "/fapi/v1/time"): _time}) as host:
        client = _client(host)
        await client.http.time_sync.sync()
        stream = client.market_stream(["BTCUSDT"], [Timeframe.M1], mark_price=True)
        events = await _collect(stream, lambda out: any(
            isinstance(e, CandleClosed) and e.candle.open_time_ms == bars[9] for e in out))
        await client.close()

    candles = [e for e in events if isinstance(e, CandleClosed)]
    assert [c.candle.open_time_ms for c in candles] == bars  # every bar once, in order
    assert [c.backfilled for c in candles] == [False, False] + [True] * 8
    assert candles[2].candle.close == D("100.5")  # REST row, not a stream frame
    assert any(isinstance(e, MarkPriceUpdate) and e.mark_price == D("100.1") for e in events)
    assert connections == 2 and len(kline_queries) == 1
    assert int(kline_queries[0]["startTime"]) == bars[2]


async def _time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": int(time.time() * 1000)})


async def test_failed_backfill_emits_an_explicit_gap_then_continues() -> None:
    bars = _bars()

    async def market(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(_kline_frame(bars[0]))
        await ws.send_str(_kline_frame(bars[4]))  # bars 1..3 never arrived
        async for _ in ws:
            pass
        return ws

    async def klines(request: web.Request) -> web.Response:
        return web.Response(status=500, text="Internal error")

    async with peer({("GET", "/market/stream"): market, ("GET", "/fapi/v1/klines"): klines}) as host:
        client = _client(host)
        events = await _collect(client.market_stream(["BTCUSDT"], [Timeframe.M1], mark_price=False),
                                lambda out: len(out) >= 3)
        await client.close()
    assert isinstance(events[0], CandleClosed) and events[0].candle.open_time_ms == bars[0]
    gap = events[1]
    assert isinstance(gap, StreamGap) and (gap.from_open_ms, gap.to_open_ms) == (bars[1], bars[3])
    assert isinstance(events[2], CandleClosed) and events[2].candle.open_time_ms == bars[4]


ORDER_NEW = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {
    "s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.010", "p": "100", "ap": "0",
    "x": "NEW", "X": "NEW", "i": 11, "l": "0", "z": "0", "L": "0", "T": 1, "t": 0, "R": False, "ps": "BOTH"}}
ALGO_NEW = {"e": "ALGO_UPDATE", "E": 2, "T": 2, "o": {
    "caid": "sl-1", "aid": 5, "at": "CONDITIONAL", "o": "STOP_MARKET", "s": "BTCUSDT", "S": "SELL", "ps": "BOTH",
    "f": "GTC", "q": "0", "X": "NEW", "ai": "", "tp": "90", "p": "0", "wt": "MARK_PRICE", "cp": True, "R": False}}


async def test_listen_key_expiry_renews_key_and_asks_for_reconciliation() -> None:
    keys = iter(["key-one", "key-two"])
    posted: list[str] = []
    connected: list[str] = []

    async def new_key(request: web.Request) -> web.Response:
        assert request.headers["X-MBX-APIKEY"] == "k" * 16
        posted.append(next(keys))
        return web.json_response({"listenKey": posted[-1]})

    async def private(request: web.Request) -> web.WebSocketResponse:
        key = request.query["listenKey"]
        connected.append(key)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if key == "key-one":
            await ws.send_str(json.dumps(ORDER_NEW))
            await ws.send_str(json.dumps({"e": "listenKeyExpired", "E": "1736996475556", "listenKey": key}))
            async for msg in ws:  # the client must leave on its own
                if msg.type is WSMsgType.CLOSE:
                    break
        else:
            await ws.send_str(json.dumps(ALGO_NEW))
            async for _ in ws:  # hold the connection until the client leaves
                pass
        return ws

    async with peer({("POST", "/fapi/v1/listenKey"): new_key, ("GET", "/private/ws"): private}) as host:
        client = _client(host, Secrets(api_key="k" * 16, api_secret="s" * 16))
        events = await _collect(client.user_stream(), lambda out: len(out) >= 3)
        await client.close()
    assert isinstance(events[0], OrderUpdate) and events[0].order.order_id == 11
    assert isinstance(events[1], ReconcileNeeded) and events[1].reason == "listenKey expired"
    assert isinstance(events[2], AlgoUpdate) and events[2].algo.client_algo_id == "sl-1"
    assert posted == ["key-one", "key-two"] and connected == ["key-one", "key-two"]


async def test_keepalive_on_dead_key_creates_a_new_one() -> None:
    keys = iter(["key-a", "key-b"])
    connected: list[str] = []

    async def new_key(request: web.Request) -> web.Response:
        return web.json_response({"listenKey": next(keys)})

    async def keepalive(request: web.Request) -> web.Response:
        return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)

    async def private(request: web.Request) -> web.WebSocketResponse:
        connected.append(request.query["listenKey"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    settings = SETTINGS.model_copy(update={"listen_key_keepalive_s": 0.2})
    async with peer({("POST", "/fapi/v1/listenKey"): new_key, ("PUT", "/fapi/v1/listenKey"): keepalive,
                     ("GET", "/private/ws"): private}) as host:
        client = BinanceFutures(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                                settings=settings, secrets=Secrets(api_key="k" * 16, api_secret="s" * 16))
        events = await _collect(client.user_stream(), lambda out: len(out) >= 1)
        await client.close()
    assert isinstance(events[0], ReconcileNeeded) and events[0].reason == "listenKey renewed"
    assert connected[:2] == ["key-a", "key-b"]


async def test_pings_are_answered_and_connections_rotate_before_the_limit() -> None:
    bars = _bars()
    connections = 0
    pongs = 0

    async def market(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections, pongs
        connections += 1
        ws = web.WebSocketResponse(autoping=False)  # see the client's pong ourselves
        await ws.prepare(request)
        await ws.ping(b"binance")
        msg = await ws.receive(timeout=2)
        if msg.type is WSMsgType.PONG and msg.data == b"binance":
            pongs += 1
            # Only a client that answered the ping gets data.
            number = connections

            async def feed() -> None:
                await ws.send_str(_kline_frame(bars[number - 1]))
                while not ws.closed:
                    await ws.send_str(json.dumps({"stream": "btcusdt@markPrice@1s", "data": {
                        "e": "markPriceUpdate", "E": number, "s": "BTCUSDT", "p": "1", "i": "1", "r": "0", "T": 0}}))
                    await asyncio.sleep(0.02)

            feeder = asyncio.create_task(feed())
            async for _ in ws:  # answers the client's close when it rotates
                pass
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        return ws

    async def klines(request: web.Request) -> web.Response:
        start, end = int(request.query["startTime"]), int(request.query["endTime"])
        return web.json_response([_rest_row(b) for b in bars if start <= b <= end])

    settings = SETTINGS.model_copy(update={"ws_rotate_s": 0.3})
    async with peer({("GET", "/market/stream"): market, ("GET", "/fapi/v1/klines"): klines}) as host:
        client = BinanceFutures(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                                settings=settings)
        events = await _collect(client.market_stream(["BTCUSDT"], [Timeframe.M1]),
                                lambda out: any(isinstance(e, MarkPriceUpdate) and e.event_time_ms == 2 for e in out))
        await client.close()
    assert connections >= 2 and pongs == connections
    opens = [e.candle.open_time_ms for e in events if isinstance(e, CandleClosed)]
    assert opens == sorted(set(opens)) and opens[0] == bars[0]  # rotation loses and repeats nothing


async def test_plain_user_stream_drop_asks_for_reconciliation() -> None:
    connections = 0

    async def new_key(request: web.Request) -> web.Response:
        return web.json_response({"listenKey": "same-key"})

    async def private(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if connections == 1:
            await ws.close()  # network blip
            return ws
        await ws.send_str(json.dumps(ORDER_NEW))
        async for _ in ws:
            pass
        return ws

    async with peer({("POST", "/fapi/v1/listenKey"): new_key, ("GET", "/private/ws"): private}) as host:
        client = _client(host, Secrets(api_key="k" * 16, api_secret="s" * 16))
        events = await _collect(client.user_stream(), lambda out: len(out) >= 2)
        await client.close()
    assert isinstance(events[0], ReconcileNeeded) and events[0].reason == "user stream reconnected"
    assert isinstance(events[1], OrderUpdate)
