"""BinanceFutures against the simulated Binance over loopback: every REST call the port offers.

The connector and the simulator were written apart, from the same BINANCE.md; here they talk.
The connector uses the sim's own clock (``server.clock``), as paper mode wires it.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from core.errors import Rejected
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    MarginType,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Timeframe,
    WorkingType,
)
from exchanges.binance.client import BinanceFutures
from exchanges.binance.limits import ENDPOINT_COSTS, Lane, cost_of
from exchanges.sim.feed import SymbolData
from exchanges.sim.limits import RateLimiter as SimRateLimiter
from exchanges.sim.routes import ROUTES
from exchanges.sim.server import SimServer
from tests.binance_sim import MIN, connector, load_recorded, running, sim_server
from tests.binance_sim import client, recorded, server  # noqa: F401 - shared fixtures


def _market(cid: str, side: Side, qty: str, *, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, OrderType.MARKET, D(qty), cid, reduce_only=reduce_only)


def _limit(cid: str, side: Side, qty: str, price: D, tif: TimeInForce) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, OrderType.LIMIT, D(qty), cid, price=price, time_in_force=tif)


async def test_start_loads_rules_and_rate_limit_pools(server: SimServer, client: BinanceFutures) -> None:
    rules = await client.symbol_rules(["BTCUSDT", "ETHUSDT"])
    spec = server.venue.specs["BTCUSDT"]
    btc = rules["BTCUSDT"]
    assert btc.tick_size == spec.rules.tick_size and btc.step_size == spec.rules.step_size
    assert btc.min_notional == spec.rules.min_notional
    # The sim's exchangeInfo.rateLimits replaced the connector's defaults.
    assert {"REQUEST_WEIGHT_1M", "ORDERS_10S", "ORDERS_1M"} <= set(client.limiter.pool_names)
    assert client.limiter.limit("REQUEST_WEIGHT_1M") == 2400
    assert abs(client.http.time_sync.offset_ms) < 1000  # same clock: only the round trip


async def test_klines_paginate_and_equal_the_recorded_bars(server: SimServer, client: BinanceFutures,
                                                           recorded: dict[str, SymbolData]) -> None:
    bars = await client.klines("BTCUSDT", Timeframe.M1, limit=2000)  # two pages: 1500 + 500
    # 300 warm-up bars precede the start; the 300th closes on the start's very millisecond, so
    # it is still in progress at now = start - 1 and the connector keeps closed bars only.
    assert len(bars) == 299
    m1 = recorded["BTCUSDT"].m1
    now = server.clock.now_ms()
    assert all(b.close_time_ms < now for b in bars)
    first = int((bars[0].open_time_ms - m1.first_open_ms) // MIN)
    for i, b in enumerate(bars):
        assert b.open_time_ms == m1.first_open_ms + (first + i) * MIN
        assert (float(b.open), float(b.high), float(b.low), float(b.close)) == pytest.approx(
            (m1.open[first + i], m1.high[first + i], m1.low[first + i], m1.close[first + i]))
    h1 = await client.klines("BTCUSDT", Timeframe.H1, limit=3)
    assert [b.open_time_ms % Timeframe.H1.ms for b in h1] == [0, 0, 0]
    assert h1[-1].close_time_ms < now


async def test_warm_up_history_pages_past_1500(recorded: dict[str, SymbolData]) -> None:
    async with running(sim_server(recorded, warmup_bars=2100)) as server:
        client = connector(server)
        try:
            await client.start()
            await server.advance(150)
            bars = await client.klines("BTCUSDT", Timeframe.M1, limit=2000)  # pages of 1500 + 500
            assert len(bars) == 2000
            opens = [b.open_time_ms for b in bars]
            assert opens == list(range(opens[0], opens[-1] + MIN, MIN))
            assert bars[-1].close_time_ms < server.clock.now_ms() <= bars[-1].close_time_ms + MIN + 1
        finally:
            await client.close()


async def test_mark_price_funding_and_commission(server: SimServer, client: BinanceFutures) -> None:
    mark = await client.mark_price("BTCUSDT")
    assert mark.symbol == "BTCUSDT" and mark.mark_price > 0
    assert mark.next_funding_time_ms % (8 * 3600_000) == 0
    rates = await client.funding_rates("BTCUSDT", end_ms=server.clock.now_ms(), limit=5)
    assert rates and all(r.funding_time_ms <= server.clock.now_ms() for r in rates)
    fee = await client.commission_rate("BTCUSDT")
    assert (fee.maker, fee.taker) == (D("0.0002"), D("0.0005"))


async def test_market_order_position_trades_and_income(server: SimServer, client: BinanceFutures) -> None:
    assert await client.set_leverage("BTCUSDT", 10) == 10
    await client.set_margin_type("BTCUSDT", MarginType.CROSSED)  # unchanged: -4046 is success
    await client.set_margin_type("BTCUSDT", MarginType.ISOLATED)
    await client.set_position_mode(False)  # unchanged: -4059 is success
    assert await client.get_position_mode() is False
    order = await client.place_order(_market("mkt-1", Side.BUY, "0.010"))
    assert order.status is OrderStatus.FILLED and order.executed_qty == D("0.010")
    queried = await client.query_order("BTCUSDT", client_order_id="mkt-1")
    assert queried.order_id == order.order_id and queried.avg_price == order.avg_price
    [pos] = await client.positions("BTCUSDT")
    assert pos.quantity == D("0.010") and pos.entry_price == order.avg_price
    assert pos.leverage == 10 and pos.margin_type is MarginType.ISOLATED
    await server.advance(90)
    close = await client.place_order(_market("mkt-2", Side.SELL, "0.010", reduce_only=True))
    assert close.status is OrderStatus.FILLED
    fills = await client.user_trades("BTCUSDT")
    assert [f.order_id for f in fills] == [order.order_id, close.order_id]
    assert sum(f.commission for f in fills) > 0
    income = await client.income(symbol="BTCUSDT")
    kinds = {i.income_type for i in income}
    assert {"COMMISSION", "REALIZED_PNL"} <= kinds
    pnl = sum(i.income for i in income if i.income_type == "REALIZED_PNL")
    assert pnl == sum(f.realized_pnl for f in fills)
    [usdt] = [b for b in await client.balances() if b.asset == "USDT"]
    assert usdt.wallet_balance == D("10000") + sum(i.income for i in income)
    assert await client.positions("BTCUSDT") == []


async def test_limit_time_in_force_and_post_only(server: SimServer, client: BinanceFutures) -> None:
    mark = (await client.mark_price("BTCUSDT")).mark_price
    below, above = (mark * D("0.97")).quantize(D("0.1")), (mark * D("1.03")).quantize(D("0.1"))
    rest = await client.place_order(_limit("gtc-1", Side.BUY, "0.010", below, TimeInForce.GTC))
    assert rest.status is OrderStatus.NEW and rest.price == below
    assert [o.client_order_id for o in await client.open_orders("BTCUSDT")] == ["gtc-1"]
    ioc = await client.place_order(_limit("ioc-1", Side.BUY, "0.010", below, TimeInForce.IOC))
    assert ioc.status is OrderStatus.EXPIRED
    with pytest.raises(Rejected) as fok:  # BINANCE.md §8: -5021 FOK_ORDER_REJECT
        await client.place_order(_limit("fok-1", Side.BUY, "0.010", below, TimeInForce.FOK))
    assert fok.value.code == -5021
    taker = await client.place_order(_limit("ioc-2", Side.BUY, "0.010", above, TimeInForce.IOC))
    assert taker.status is OrderStatus.FILLED
    with pytest.raises(Rejected) as gtx:
        await client.place_order(_limit("gtx-1", Side.BUY, "0.010", above, TimeInForce.GTX))
    assert gtx.value.code == -5022
    maker = await client.place_order(_limit("gtx-2", Side.SELL, "0.010", above, TimeInForce.GTX))
    assert maker.status is OrderStatus.NEW
    canceled = await client.cancel_order("BTCUSDT", client_order_id="gtc-1")
    assert canceled.status is OrderStatus.CANCELED
    await client.cancel_all_orders("BTCUSDT")
    assert await client.open_orders() == []
    with pytest.raises(Rejected) as unknown:
        await client.query_order("BTCUSDT", client_order_id="gtc-404")
    assert unknown.value.code == -2013


async def test_algo_orders_place_query_cancel_and_trigger(server: SimServer, client: BinanceFutures) -> None:
    await client.place_order(_market("entry-1", Side.BUY, "0.010"))
    mark = (await client.mark_price("BTCUSDT")).mark_price
    sl = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "sl-1",
                          trigger_price=(mark * D("0.9")).quantize(D("0.1")), close_position=True,
                          working_type=WorkingType.MARK_PRICE)
    tp = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.TAKE_PROFIT_MARKET, "tp-1",
                          trigger_price=(mark * D("1.0005")).quantize(D("0.1")), quantity=D("0.010"),
                          reduce_only=True, working_type=WorkingType.CONTRACT_PRICE)
    placed_sl = await client.place_algo_order(sl)
    assert placed_sl.status is AlgoStatus.NEW and placed_sl.close_position
    assert placed_sl.working_type is WorkingType.MARK_PRICE and placed_sl.trigger_price == sl.trigger_price
    placed_tp = await client.place_algo_order(tp)
    assert placed_tp.reduce_only and placed_tp.quantity == D("0.010")
    assert {a.client_algo_id for a in await client.open_algo_orders("BTCUSDT")} == {"sl-1", "tp-1"}
    queried = await client.query_algo_order("BTCUSDT", client_algo_id="sl-1")
    assert queried.algo_id == placed_sl.algo_id and queried.status is AlgoStatus.NEW
    # An untriggered algo order is unknown to the regular order endpoint, as on Binance.
    with pytest.raises(Rejected) as untriggered:
        await client.query_order("BTCUSDT", client_order_id="sl-1")
    assert untriggered.value.code == -2013
    # Walk the price path until the take-profit triggers (or give up after 3 hours).
    for _ in range(180):
        await server.advance(60)
        done = await client.query_algo_order("BTCUSDT", algo_id=placed_tp.algo_id)
        if done.status is not AlgoStatus.NEW:
            break
    assert done.status is AlgoStatus.FINISHED and done.actual_order_id is not None
    child = await client.query_order("BTCUSDT", order_id=done.actual_order_id)
    assert child.status is OrderStatus.FILLED and child.executed_qty == D("0.010")
    assert await client.positions("BTCUSDT") == []
    # The closePosition stop expired with the position (or is still open and cancels cleanly).
    stop = await client.query_algo_order("BTCUSDT", algo_id=placed_sl.algo_id)
    if stop.status is AlgoStatus.NEW:
        await client.cancel_algo_order("BTCUSDT", algo_id=placed_sl.algo_id)
        stop = await client.query_algo_order("BTCUSDT", algo_id=placed_sl.algo_id)
        assert stop.status is AlgoStatus.CANCELED
    else:
        assert stop.status in (AlgoStatus.EXPIRED, AlgoStatus.CANCELED)
    assert await client.open_algo_orders() == []


async def test_conditional_type_on_the_order_endpoint_gets_4120(client: BinanceFutures) -> None:
    params = [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "STOP_MARKET"), ("stopPrice", "20000"),
              ("closePosition", "true"), ("newClientOrderId", "legacy-1")]
    with pytest.raises(Rejected) as exc:
        await client.rest.new_order(params, client_id="legacy-1", lane=Lane.PROTECT)
    assert exc.value.code == -4120
    assert "Algo Order API" in str(exc.value)


async def test_cancel_all_algo_orders(client: BinanceFutures) -> None:
    await client.place_order(_market("entry-2", Side.SELL, "0.010"))
    mark = (await client.mark_price("BTCUSDT")).mark_price
    for i, k in enumerate(("1.2", "1.3")):
        await client.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.BUY, OrderType.STOP_MARKET, f"sl-all-{i}",
            trigger_price=(mark * D(k)).quantize(D("0.1")), quantity=D("0.010"), reduce_only=True))
    assert len(await client.open_algo_orders()) == 2
    await client.cancel_all_algo_orders("BTCUSDT")
    assert await client.open_algo_orders("BTCUSDT") == []


async def test_exchange_info_advertises_the_limits_the_sim_enforces(recorded: dict[str, SymbolData]) -> None:
    limiter = SimRateLimiter(weight_limit=600, orders_1m_limit=100, orders_10s_limit=20)
    async with running(sim_server(recorded, limiter=limiter)) as server:
        client = connector(server)
        try:
            await client.start()
            assert [client.limiter.limit(p) for p in ("REQUEST_WEIGHT_1M", "ORDERS_1M", "ORDERS_10S")] == [600, 100, 20]
        finally:
            await client.close()


def test_the_connector_and_the_sim_charge_every_endpoint_alike() -> None:
    """Both weight tables were written from BINANCE.md §2; they must never drift apart."""
    routes = {(r.method, r.path): r for r in ROUTES}
    samples = ({}, {"symbol": "BTCUSDT"}, {"limit": "99"}, {"limit": "499"}, {"limit": "1000"}, {"limit": "1500"})
    checked = 0
    for (method, path) in ENDPOINT_COSTS:
        if path.startswith("/sapi/"):
            continue  # the spot host's endpoint: not part of the futures simulator
        route = routes[(method, path)]
        for params in samples:
            cost = cost_of(method, path, params)
            assert (cost.weight, cost.orders) == (route.weight(params), route.orders), (method, path, params)
        checked += 1
    assert checked >= 30


async def test_local_counts_match_the_sims_headers(server: SimServer, client: BinanceFutures) -> None:
    await client.open_orders()                       # 40
    await client.klines("BTCUSDT", Timeframe.M1, limit=600)  # 5
    await client.income()                            # 30
    await client.place_order(_market("count-1", Side.BUY, "0.010"))  # 0 weight, 1 order
    assert client.limiter.used("REQUEST_WEIGHT_1M") == server.limiter.weight.used
    assert client.limiter.used("ORDERS_10S") == server.limiter.orders_10s.used == 1
