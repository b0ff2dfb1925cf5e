"""Order edge cases between BinanceFutures and the simulated Binance: batches, ACK answers,
partial fills, rejections with Binance's codes, rounding, trailing and limit conditionals,
algo rejection, -1008 overload with its reduce-only exemption, leverage config events."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from core.errors import Rejected, Retryable, UnknownOutcome
from core.events import AccountConfigUpdate, AlgoUpdate, OrderUpdate
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    ResponseType,
    Side,
    TimeInForce,
    WorkingType,
)
from exchanges.binance.client import BinanceFutures
from exchanges.binance.limits import Lane
from exchanges.sim.feed import SymbolData
from exchanges.sim.server import SimServer
from tests.binance_sim import Collector, connected, connector, load_recorded, sim_server
from tests.binance_sim import client, recorded, server  # noqa: F401 - shared fixtures


def _market(cid: str, side: Side, qty: str, **kw: object) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, OrderType.MARKET, D(qty), cid, **kw)  # type: ignore[arg-type]


async def _mark(client: BinanceFutures) -> D:
    return (await client.mark_price("BTCUSDT")).mark_price


async def test_batch_orders_answer_orders_and_rejections_in_order(client: BinanceFutures) -> None:
    mark = await _mark(client)
    good = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
            ("quantity", "0.010"), ("price", str((mark * D("0.9")).quantize(D("0.1")))),
            ("newClientOrderId", "batch-ok")]
    bad_tick = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                ("quantity", "0.010"), ("price", str((mark * D("0.9")).quantize(D("0.1")) + D("0.05"))),
                ("newClientOrderId", "batch-bad")]
    answers = await client.rest.batch_orders([good, bad_tick], lane=Lane.ENTRY)
    assert isinstance(answers[0], Order) and answers[0].client_order_id == "batch-ok"
    assert isinstance(answers[1], Rejected) and answers[1].code == -4014
    assert [o.client_order_id for o in await client.open_orders("BTCUSDT")] == ["batch-ok"]


async def test_ack_answer_parses_and_the_order_is_queryable(client: BinanceFutures) -> None:
    ack = await client.place_order(_market("ack-1", Side.BUY, "0.010", response_type=ResponseType.ACK))
    assert ack.client_order_id == "ack-1" and ack.order_id > 0
    assert (await client.query_order("BTCUSDT", order_id=ack.order_id)).status is OrderStatus.FILLED


async def test_prices_and_quantities_leave_rounded_by_the_venue_rules(client: BinanceFutures) -> None:
    mark = await _mark(client)
    raw_price = mark * D("0.95") + D("0.0371")  # off the 0.1 tick
    order = await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.01049"), "round-1",
                                                  price=raw_price, time_in_force=TimeInForce.GTC))
    assert order.quantity == D("0.010")  # stepped down to the 0.001 step
    assert order.price == raw_price.quantize(D("0.1"), rounding="ROUND_FLOOR")  # a buy rounds passively: down


async def test_rejections_carry_binance_codes(client: BinanceFutures) -> None:
    with pytest.raises(Rejected) as min_notional:
        await client.place_order(_market("tiny", Side.BUY, "0.001"))  # ~30 USDT < 100 USDT
    assert min_notional.value.code == -4164
    with pytest.raises(Rejected) as reduce_only:
        await client.place_order(_market("ro-flat", Side.SELL, "0.010", reduce_only=True))
    assert reduce_only.value.code == -2022
    with pytest.raises(Rejected) as margin:
        await client.place_order(_market("huge", Side.BUY, "100"))
    assert margin.value.code == -2019
    with pytest.raises(Rejected) as unknown:
        await client.cancel_order("BTCUSDT", order_id=987654321)
    assert unknown.value.code == -2011
    assert await client.open_orders() == []


async def test_partial_fills_reach_rest_and_stream_alike(server: SimServer, client: BinanceFutures) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        server.faults.split_fills_into(3)
        order = await client.place_order(_market("split-1", Side.BUY, "0.030"))
        assert order.status is OrderStatus.FILLED and order.executed_qty == D("0.030")
        trades = await client.user_trades("BTCUSDT")
        assert len(trades) == 3 and sum(t.quantity for t in trades) == D("0.030")
        updates = await events.wait_count(lambda e: isinstance(e, OrderUpdate), 4)  # NEW + 3 trades
        statuses = [e.order.status for e in updates]
        assert statuses == [OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PARTIALLY_FILLED,
                            OrderStatus.FILLED]
        complete = {e.fill.key: e.fill for e in events.items if isinstance(e, OrderUpdate) and e.fill is not None}
        assert set(complete) == {(t.order_id, t.trade_id) for t in trades}
        assert sum(f.commission for f in complete.values()) == sum(t.commission for t in trades)
    finally:
        await events.close()


async def test_trailing_and_limit_conditionals_round_trip(client: BinanceFutures) -> None:
    await client.place_order(_market("entry-t", Side.BUY, "0.020"))
    mark = await _mark(client)
    trail = await client.place_algo_order(AlgoOrderRequest(
        "BTCUSDT", Side.SELL, OrderType.TRAILING_STOP_MARKET, "trail-1", quantity=D("0.010"), reduce_only=True,
        activate_price=mark * D("1.01"), callback_rate=D("1.5"), working_type=WorkingType.CONTRACT_PRICE))
    assert trail.type is OrderType.TRAILING_STOP_MARKET and trail.callback_rate == D("1.5")
    assert trail.activate_price == (mark * D("1.01")).quantize(D("0.1"))
    stop_limit = await client.place_algo_order(AlgoOrderRequest(
        "BTCUSDT", Side.SELL, OrderType.STOP, "stop-lim-1", quantity=D("0.010"), reduce_only=True,
        trigger_price=(mark * D("0.95")).quantize(D("0.1")), price=(mark * D("0.949")).quantize(D("0.1"))))
    queried = await client.query_algo_order("BTCUSDT", client_algo_id="stop-lim-1")
    assert queried.algo_id == stop_limit.algo_id and queried.price == stop_limit.price > 0
    assert queried.type is OrderType.STOP and queried.status is AlgoStatus.NEW
    with pytest.raises(Rejected) as immediate:  # a stop already through the market
        await client.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "stop-now", quantity=D("0.010"), reduce_only=True,
            trigger_price=(mark * D("1.05")).quantize(D("0.1"))))
    assert immediate.value.code == -2021


async def test_a_rejected_algo_order_is_reported_with_its_reason(server: SimServer, client: BinanceFutures) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        await client.place_order(_market("entry-r", Side.BUY, "0.010"))
        server.faults.reject_next_algo(1)
        mark = await _mark(client)
        await client.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "rej-1", close_position=True,
            trigger_price=(mark * D("0.9")).quantize(D("0.1")), working_type=WorkingType.MARK_PRICE))
        await server.advance(1)
        rejected = await events.wait_for(lambda e: isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.REJECTED)
        assert rejected.algo.client_algo_id == "rej-1" and rejected.algo.reason
        assert (await client.query_algo_order("BTCUSDT", client_algo_id="rej-1")).status is AlgoStatus.REJECTED
        assert await client.open_algo_orders("BTCUSDT") == []
    finally:
        await events.close()


async def test_overload_1008_fails_entries_but_spares_reduce_only(server: SimServer, client: BinanceFutures) -> None:
    await client.place_order(_market("entry-o", Side.BUY, "0.010"))
    server.faults.fail("/fapi/v1/order", status="-1008", method="POST", count=2)
    with pytest.raises(Retryable) as overloaded:
        await client.place_order(_market("entry-o2", Side.BUY, "0.010"))
    assert not isinstance(overloaded.value, UnknownOutcome)  # failed for sure: nothing was placed
    with pytest.raises(Rejected):
        await client.query_order("BTCUSDT", client_order_id="entry-o2")
    close = await client.place_order(_market("exit-o", Side.SELL, "0.010", reduce_only=True))
    assert close.status is OrderStatus.FILLED
    assert await client.positions("BTCUSDT") == []


async def test_leverage_change_is_streamed_as_account_config(server: SimServer, client: BinanceFutures) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        assert await client.set_leverage("ETHUSDT", 7) == 7
        update = await events.wait_for(lambda e: isinstance(e, AccountConfigUpdate))
        assert (update.symbol, update.leverage) == ("ETHUSDT", 7)
    finally:
        await events.close()


async def test_a_resting_limit_fills_as_maker_in_rest_and_stream(server: SimServer, client: BinanceFutures) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        mark = await _mark(client)
        price = (mark * D("1.0005")).quantize(D("0.1"))
        order = await client.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.LIMIT, D("0.010"), "maker-1",
                                                      price=price, time_in_force=TimeInForce.GTX))
        assert order.status is OrderStatus.NEW
        for _ in range(240):
            await server.advance(60)
            if (await client.query_order("BTCUSDT", order_id=order.order_id)).status is OrderStatus.FILLED:
                break
        [trade] = await client.user_trades("BTCUSDT")
        fee = await client.commission_rate("BTCUSDT")
        assert trade.is_maker and trade.price == price
        assert trade.commission == (trade.price * trade.quantity * fee.maker).quantize(trade.commission)
        await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.fill is not None)
        [fill] = [e.fill for e in events.items if isinstance(e, OrderUpdate) and e.fill is not None]
        assert (fill.key, fill.is_maker, fill.price, fill.quantity, fill.commission) == (
            (trade.order_id, trade.trade_id), True, trade.price, trade.quantity, trade.commission)
        done = await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.status is OrderStatus.FILLED)
        assert done.order.avg_price == price
        [pos] = await client.positions("BTCUSDT")
        assert pos.quantity == D("-0.010") and pos.entry_price == price
    finally:
        await events.close()


async def test_good_till_date_expires_on_the_venue_clock(server: SimServer, client: BinanceFutures) -> None:
    mark = await _mark(client)
    until = (server.clock.now_ms() // 1000 + 15 * 60) * 1000  # > now + 600 s, whole seconds
    order = await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"), "gtd-1",
                                                  price=(mark * D("0.9")).quantize(D("0.1")),
                                                  time_in_force=TimeInForce.GTD, good_till_ms=until))
    assert order.status is OrderStatus.NEW and order.time_in_force is TimeInForce.GTD
    await server.advance(14 * 60)
    assert (await client.query_order("BTCUSDT", order_id=order.order_id)).status is OrderStatus.NEW
    await server.advance(2 * 60)
    assert (await client.query_order("BTCUSDT", order_id=order.order_id)).status is OrderStatus.EXPIRED
    assert await client.open_orders("BTCUSDT") == []
