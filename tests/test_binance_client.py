"""BinanceFutures over a loopback peer playing Binance: what the port adds beyond single endpoints
(rounding by SymbolRules, kline pagination and closed-only bars, idempotent mode switches,
symbolConfig merge, algo routing) and the preflight check."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from config.secrets import Secrets
from config.settings import ExchangeSettings, RetrySettings
from core.clock import LiveClock
from core.errors import ExchangeError, Rejected
from core.ports import ExchangePort
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    MarginType,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
    Timeframe,
    WorkingType,
)
from exchanges.binance.client import BinanceFutures
from exchanges.binance.preflight import Status, preflight
from exchanges.binance.urls import BinanceUrls
from tests.binance_fixtures import load_json
from tests.binance_peer import peer

SETTINGS = ExchangeSettings(request_timeout_s=1.0, retry=RetrySettings(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02))
SECRETS = Secrets(api_key="k" * 16, api_secret="s" * 16)
MIN = 60_000
EXINFO = "cryptofeed/extracted/rest_exchangeInfo_BTC_ETH_SUSHI_2021-07-22.json"


def _client(host: str) -> BinanceFutures:
    return BinanceFutures(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                          settings=SETTINGS, secrets=SECRETS)


async def _params(request: web.Request) -> dict[str, str]:
    body = await request.text()
    return dict(parse_qsl(body)) | dict(request.query)


async def _time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": int(time.time() * 1000)})


def _exinfo_handler(fixtures_dir: Path):  # noqa: ANN202 - test helper
    data = load_json(fixtures_dir / EXINFO)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(data)

    return handler


def test_client_implements_the_port() -> None:
    client = BinanceFutures(BinanceUrls(rest="http://127.0.0.1:1", ws="ws://127.0.0.1:1"), clock=LiveClock(),
                            settings=SETTINGS)
    assert isinstance(client, ExchangePort)


async def test_orders_leave_rounded_by_symbol_rules_and_algos_go_to_the_algo_api(fixtures_dir: Path) -> None:
    sent: dict[str, dict[str, str]] = {}

    async def order(request: web.Request) -> web.Response:
        p = await _params(request)
        sent["order"] = p
        return web.json_response({"orderId": 1, "symbol": p["symbol"], "status": "NEW", "clientOrderId": p["newClientOrderId"],
                                  "price": p.get("price", "0"), "origQty": p["quantity"], "executedQty": "0",
                                  "type": p["type"], "side": p["side"], "timeInForce": p.get("timeInForce", "GTC"),
                                  "updateTime": 5})

    async def algo(request: web.Request) -> web.Response:
        p = await _params(request)
        sent["algo"] = p
        return web.json_response({"algoId": 9, "clientAlgoId": p["clientAlgoId"], "algoType": "CONDITIONAL",
                                  "orderType": p["type"], "symbol": p["symbol"], "side": p["side"],
                                  "positionSide": "BOTH", "timeInForce": "GTC", "quantity": "0",
                                  "algoStatus": "NEW", "triggerPrice": p["triggerPrice"], "price": "0",
                                  "workingType": p["workingType"], "closePosition": True, "reduceOnly": False,
                                  "activatePrice": "", "callbackRate": "", "createTime": 1, "updateTime": 1})

    async with peer({("GET", "/fapi/v1/exchangeInfo"): _exinfo_handler(fixtures_dir),
                     ("POST", "/fapi/v1/order"): order, ("POST", "/fapi/v1/algoOrder"): algo}) as host:
        client = _client(host)
        placed = await client.place_order(OrderRequest(
            "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.0129"), "entry-1", price=D("30000.019"),
            time_in_force=TimeInForce.GTX))
        stop = await client.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "sl-1", trigger_price=D("29000.017"),
            close_position=True))
        await client.close()
    o = sent["order"]
    assert (o["quantity"], o["price"], o["timeInForce"], o["newOrderRespType"]) == ("0.012", "30000.01", "GTX", "RESULT")
    a = sent["algo"]
    assert (a["algoType"], a["type"], a["triggerPrice"], a["closePosition"], a["workingType"]) == (
        "CONDITIONAL", "STOP_MARKET", "29000.01", "true", "MARK_PRICE")  # SELL stop rounds down
    assert "quantity" not in a and "reduceOnly" not in a
    assert placed.quantity == D("0.012") and stop.status is AlgoStatus.NEW and stop.trigger_price == D("29000.01")
    assert stop.working_type is WorkingType.MARK_PRICE


async def test_klines_paginate_and_return_closed_bars_only() -> None:
    now = int(time.time() * 1000)
    current = now - now % MIN
    all_bars = [current - i * MIN for i in range(2000, -1, -1)]  # the last one is still open
    calls: list[dict[str, str]] = []

    async def klines(request: web.Request) -> web.Response:
        q = dict(request.query)
        calls.append(q)
        start = int(q["startTime"])
        rows = [[b, "1", "2", "0.5", "1.5", "10", b + MIN - 1, "15", 4, "5", "7", "0"]
                for b in all_bars if b >= start][: int(q["limit"])]
        return web.json_response(rows)

    async with peer({("GET", "/fapi/v1/klines"): klines, ("GET", "/fapi/v1/time"): _time}) as host:
        client = _client(host)
        await client.http.time_sync.sync()
        bars = await client.klines("BTCUSDT", Timeframe.M1, start_ms=all_bars[0], limit=2001)
        await client.close()
    assert [int(c["limit"]) for c in calls] == [1500, 501]
    assert [b.open_time_ms for b in bars] == all_bars[:-1]  # the in-progress bar is dropped
    assert bars[0].close == D("1.5") and bars[0].trades == 4


async def test_idempotent_account_switches_and_position_merge(fixtures_dir: Path) -> None:
    async def margin(request: web.Request) -> web.Response:
        return web.json_response({"code": -4046, "msg": "No need to change margin type."}, status=400)

    async def dual(request: web.Request) -> web.Response:
        return web.json_response({"code": -4059, "msg": "No need to change position side."}, status=400)

    async def leverage(request: web.Request) -> web.Response:
        return web.json_response({"code": -4028, "msg": "Leverage 300 is not valid"}, status=400)

    async def risk(request: web.Request) -> web.Response:
        return web.json_response(load_json(fixtures_dir / "docs_examples/position_risk_v3_oneway_docs.json"))

    async def config(request: web.Request) -> web.Response:
        return web.json_response([{"symbol": "ADAUSDT", "marginType": "CROSSED", "isAutoAddMargin": "false",
                                   "leverage": 21, "maxNotionalValue": "1000000"}])

    async with peer({("POST", "/fapi/v1/marginType"): margin, ("POST", "/fapi/v1/positionSide/dual"): dual,
                     ("POST", "/fapi/v1/leverage"): leverage, ("GET", "/fapi/v3/positionRisk"): risk,
                     ("GET", "/fapi/v1/symbolConfig"): config}) as host:
        client = _client(host)
        await client.set_margin_type("BTCUSDT", MarginType.ISOLATED)  # -4046 is success
        await client.set_position_mode(False)  # -4059 is success
        with pytest.raises(Rejected) as info:
            await client.set_leverage("BTCUSDT", 300)
        positions = await client.positions()
        await client.close()
    assert info.value.code == -4028
    assert positions[0].symbol == "ADAUSDT" and positions[0].quantity == D("30")
    assert (positions[0].leverage, positions[0].margin_type) == (21, MarginType.CROSSED)


async def test_unknown_symbol_is_a_clear_error(fixtures_dir: Path) -> None:
    async with peer({("GET", "/fapi/v1/exchangeInfo"): _exinfo_handler(fixtures_dir)}) as host:
        client = _client(host)
        with pytest.raises(ExchangeError, match="DOGEUSDT"):
            await client.symbol_rules(["BTCUSDT", "DOGEUSDT"])
        rules = await client.symbol_rules(["SUSHIUSDT"])
        await client.close()
    assert rules["SUSHIUSDT"].step_size == D("1")


async def test_preflight_reports_every_check_with_reasons(fixtures_dir: Path) -> None:
    now = int(time.time() * 1000)

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                                  "dualSidePosition": True, "multiAssetsMargin": False, "updateTime": 0})

    async def open_algo(request: web.Request) -> web.Response:
        return web.json_response([])

    async def market(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        k = {"t": now - now % MIN, "T": now - now % MIN + MIN - 1, "s": "BTCUSDT", "i": "1m", "o": "1", "c": "1",
             "h": "1", "l": "1", "v": "1", "n": 1, "x": False, "q": "1", "V": "1"}
        await ws.send_str(json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": now, "s": "BTCUSDT", "k": k}}))
        async for _ in ws:
            pass
        return ws

    async with peer({("GET", "/fapi/v1/ping"): ping, ("GET", "/fapi/v1/time"): _time,
                     ("GET", "/fapi/v1/accountConfig"): config, ("GET", "/fapi/v1/openAlgoOrders"): open_algo,
                     ("GET", "/fapi/v1/exchangeInfo"): _exinfo_handler(fixtures_dir),
                     ("GET", "/market/stream"): market}) as host:
        client = _client(host)
        result = await preflight(client, ["BTCUSDT", "DOGEUSDT"], kline_timeout_s=3)
        await client.close()
    by_name = {c.name: c for c in result.checks}
    assert not result.ok
    assert by_name["connectivity"].status is Status.PASS and by_name["clock_offset"].status is Status.PASS
    assert by_name["account_modes"].status is Status.FAIL and "hedge" in by_name["account_modes"].detail
    assert by_name["api_key_permissions"].status is Status.SKIP
    assert by_name["algo_endpoints"].status is Status.PASS
    assert by_name["symbols_trading"].status is Status.FAIL and "DOGEUSDT is not listed" in by_name["symbols_trading"].detail
    assert by_name["market_stream"].status is Status.PASS
    assert {c["name"] for c in result.as_dict()["checks"]} == set(by_name)


async def test_preflight_stops_when_the_venue_is_unreachable() -> None:
    client = BinanceFutures(BinanceUrls(rest="http://127.0.0.1:9", ws="ws://127.0.0.1:9"), clock=LiveClock(),
                            settings=SETTINGS, secrets=SECRETS)
    result = await preflight(client, ["BTCUSDT"])
    await client.close()
    assert [c.name for c in result.checks] == ["connectivity"]
    assert result.failures[0].status is Status.FAIL and "connect" in result.failures[0].detail


async def test_preflight_refuses_withdrawal_enabled_keys_unless_allowed() -> None:
    async def restrictions(request: web.Request) -> web.Response:
        assert request.headers["X-MBX-APIKEY"] == SECRETS.api_key
        return web.json_response({"ipRestrict": False, "enableWithdrawals": True, "enableFutures": True,
                                  "enableReading": True, "createTime": 1})

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    async with peer({("GET", "/sapi/v1/account/apiRestrictions"): restrictions,
                     ("GET", "/fapi/v1/ping"): ping}) as host:
        verdicts = []
        for allow in (False, True):
            settings = SETTINGS.model_copy(update={"spot_rest_url": f"http://{host}", "allow_withdrawals": allow})
            client = BinanceFutures(BinanceUrls(rest=f"http://{host}", ws=f"ws://{host}"), clock=LiveClock(),
                                    settings=settings, secrets=SECRETS)
            result = await preflight(client, [], kline_timeout_s=1)
            await client.close()
            verdicts.append(next(c for c in result.checks if c.name == "api_key_permissions"))
    assert verdicts[0].status is Status.FAIL and "withdrawals enabled" in verdicts[0].detail
    assert verdicts[1].status is Status.PASS
