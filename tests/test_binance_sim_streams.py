"""BinanceFutures' streams against the simulated Binance: what the websockets deliver must equal
what REST reports and what was recorded, across drops, key expiry and funding."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.events import (
    AccountUpdate,
    AlgoUpdate,
    CandleClosed,
    FillUpdate,
    MarkPriceUpdate,
    OrderUpdate,
    ReconcileNeeded,
    StreamGap,
)
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    ExecutionType,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Timeframe,
    WorkingType,
)
from exchanges.sim.feed import SymbolData
from exchanges.sim.server import SimServer
from tests.binance_sim import client, recorded, server  # noqa: F401 - shared fixtures
from tests.binance_sim import (
    MIN,
    Collector,
    connected,
    connector,
    load_recorded,
    reconnected,
    running,
    sim_server,
    SkewedClock,
)

EIGHT_HOURS = 8 * 3600_000


def _assert_recorded(candle: CandleClosed, recorded: dict[str, SymbolData]) -> None:
    m1 = recorded[candle.candle.symbol].m1
    i = (candle.candle.open_time_ms - m1.first_open_ms) // MIN
    c = candle.candle
    assert int(m1.open_time[i]) == c.open_time_ms and c.closed
    assert (float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume)) == pytest.approx(
        (m1.open[i], m1.high[i], m1.low[i], m1.close[i], m1.volume[i]))


async def test_market_stream_delivers_recorded_closed_candles_and_mark_prices(
        server: SimServer, client, recorded: dict[str, SymbolData]) -> None:
    events = Collector(client.market_stream(["BTCUSDT", "ETHUSDT"], [Timeframe.M1, Timeframe.M5]))
    try:
        await connected(server, 1)
        start_ms = server.venue.start_ms
        await server.advance(10 * 60)
        m1 = await events.wait_count(lambda e: isinstance(e, CandleClosed) and e.candle.timeframe is Timeframe.M1,
                                     22)
        for e in m1:
            _assert_recorded(e, recorded)
        btc = [e.candle.open_time_ms for e in m1 if e.candle.symbol == "BTCUSDT"]
        # the bar in progress when the clock started (its last millisecond: not closed yet, so
        # not in a warm-up's history), then every minute once, in order
        assert btc == list(range(start_ms - MIN, start_ms + 10 * MIN, MIN))
        m5 = await events.wait_count(lambda e: isinstance(e, CandleClosed) and e.candle.timeframe is Timeframe.M5,
                                     2 * 2)
        rest5 = await client.klines("BTCUSDT", Timeframe.M5, limit=3)
        by_open = {c.open_time_ms: c for c in rest5}
        for e in m5:
            if e.candle.symbol == "BTCUSDT" and e.candle.open_time_ms in by_open:
                r = by_open[e.candle.open_time_ms]
                assert (e.candle.open, e.candle.high, e.candle.low, e.candle.close) == (r.open, r.high, r.low, r.close)
        mark = await events.wait_for(lambda e: isinstance(e, MarkPriceUpdate) and e.symbol == "BTCUSDT")
        assert mark.mark_price > 0 and mark.next_funding_time_ms % EIGHT_HOURS == 0
        rest_mark = await client.mark_price("BTCUSDT")
        assert (mark.funding_rate, mark.next_funding_time_ms) == (rest_mark.funding_rate, rest_mark.next_funding_time_ms)
        last = [e for e in events.items if isinstance(e, MarkPriceUpdate) and e.symbol == "BTCUSDT"][-1]
        assert (last.mark_price, last.event_time_ms) == (rest_mark.mark_price, rest_mark.time_ms)
        assert not [e for e in events.items if isinstance(e, StreamGap)]
        assert not any(e.backfilled for e in events.items if isinstance(e, CandleClosed))
    finally:
        await events.close()


@pytest.mark.parametrize("local_skew_ms", [0, 3_600_000, -3_600_000], ids=["same-clock", "ahead-1h", "behind-1h"])
async def test_dropped_market_stream_backfills_exactly_the_missed_candles(
        server: SimServer, recorded: dict[str, SymbolData], local_skew_ms: int) -> None:
    # Which bars closed while disconnected is judged on the venue's time, whatever ours says.
    client = connector(server, clock=SkewedClock(server.clock, local_skew_ms))
    await client.start()
    events = Collector(client.market_stream(["BTCUSDT"], [Timeframe.M1], mark_price=False))
    try:
        await connected(server, 1, route="market")
        await server.advance(3 * 60)  # the bar in progress at the start closes, then three more
        await events.wait_count(lambda e: isinstance(e, CandleClosed), 4)
        server.faults.drop_websockets()
        await server.advance(7 * 60)  # seven bars close while nobody listens
        await reconnected(server, 1, route="market")  # the connector comes back on its own
        backfilled = await events.wait_count(lambda e: isinstance(e, CandleClosed) and e.backfilled, 7)
        await server.advance(2 * 60)
        await events.wait_count(lambda e: isinstance(e, CandleClosed), 13)
        candles = [e for e in events.items if isinstance(e, CandleClosed)]
        opens = [e.candle.open_time_ms for e in candles]
        assert opens == list(range(opens[0], opens[0] + 13 * MIN, MIN))  # no gap, no duplicate
        assert [e.backfilled for e in candles] == [False] * 4 + [True] * 7 + [False] * 2
        assert len(backfilled) == 7
        for e in candles:
            _assert_recorded(e, recorded)
        assert not [e for e in events.items if isinstance(e, StreamGap)]
    finally:
        await events.close()
        await client.close()


async def test_user_stream_events_match_rest(server: SimServer, client) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        entry = await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "u-entry"))
        filled = await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.status is OrderStatus.FILLED)
        assert filled.order.order_id == entry.order_id and filled.order.client_order_id == "u-entry"
        assert filled.order.avg_price == entry.avg_price and filled.execution_type is ExecutionType.TRADE
        [trade] = await client.user_trades("BTCUSDT")
        # TRADE_LITE comes first (an early notice, no fee fields); the ORDER_TRADE_UPDATE carries
        # the complete fill, which must equal REST's userTrades row to the last digit.
        [lite] = [e.fill for e in events.items if isinstance(e, FillUpdate)]
        [fill] = [e.fill for e in events.items if isinstance(e, OrderUpdate) and e.fill is not None]
        assert lite.key == fill.key == (trade.order_id, trade.trade_id)
        assert (lite.price, lite.quantity, lite.commission) == (trade.price, trade.quantity, 0)
        assert (fill.price, fill.quantity, fill.commission, fill.commission_asset, fill.realized_pnl, fill.is_maker) == (
            trade.price, trade.quantity, trade.commission, trade.commission_asset, trade.realized_pnl, trade.is_maker)
        assert fill.commission > 0
        acct = await events.wait_for(lambda e: isinstance(e, AccountUpdate) and e.reason == "ORDER")
        [pos] = [p for p in acct.positions if p.symbol == "BTCUSDT"]
        [rest_pos] = await client.positions("BTCUSDT")
        assert pos.quantity == rest_pos.quantity == D("0.010") and pos.entry_price == rest_pos.entry_price
        assert pos.break_even_price == rest_pos.break_even_price and pos.margin_type == rest_pos.margin_type
        [usdt] = [b for b in acct.balances if b.asset == "USDT"]
        [rest_usdt] = [b for b in await client.balances() if b.asset == "USDT"]
        assert usdt.wallet_balance == rest_usdt.wallet_balance

        mark = (await client.mark_price("BTCUSDT")).mark_price
        stop = await client.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "u-stop", trigger_price=(mark * D("0.9995")).quantize(D("0.1")),
            close_position=True, working_type=WorkingType.MARK_PRICE))
        new = await events.wait_for(lambda e: isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.NEW)
        assert new.algo.algo_id == stop.algo_id and new.algo.client_algo_id == "u-stop"
        for _ in range(240):
            await server.advance(60)
            if any(isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.FINISHED for e in events.items):
                break
        finished = await events.wait_for(lambda e: isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.FINISHED)
        statuses = [e.algo.status for e in events.items if isinstance(e, AlgoUpdate) and e.algo.algo_id == stop.algo_id]
        assert statuses == [AlgoStatus.NEW, AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED, AlgoStatus.FINISHED]
        triggered = [e for e in events.items if isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.TRIGGERED][0]
        child_id = triggered.algo.actual_order_id
        assert child_id is not None and finished.algo.actual_order_id == child_id
        rest_algo = await client.query_algo_order("BTCUSDT", algo_id=stop.algo_id)
        assert rest_algo.status is AlgoStatus.FINISHED and rest_algo.actual_order_id == child_id
        assert (rest_algo.trigger_price, rest_algo.working_type, rest_algo.close_position) == (
            finished.algo.trigger_price, finished.algo.working_type, finished.algo.close_position)
        assert (rest_algo.executed_qty, rest_algo.avg_price) == (finished.algo.executed_qty, finished.algo.avg_price)
        child = await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.order_id == child_id
                                      and e.order.status is OrderStatus.FILLED)
        rest_child = await client.query_order("BTCUSDT", order_id=child_id)
        assert child.order.executed_qty == rest_child.executed_qty == D("0.010")
        assert child.order.avg_price == rest_child.avg_price
        child_trade = next(t for t in await client.user_trades("BTCUSDT") if t.order_id == child_id)
        assert child.fill is not None and child.fill.realized_pnl == child_trade.realized_pnl != 0
        assert child.fill.commission == child_trade.commission
        flat = await events.wait_for(lambda e: isinstance(e, AccountUpdate) and any(
            p.symbol == "BTCUSDT" and p.quantity == 0 for p in e.positions))
        assert flat.reason == "ORDER" and await client.positions("BTCUSDT") == []
    finally:
        await events.close()


async def test_funding_fee_arrives_as_account_update_and_income(recorded: dict[str, SymbolData]) -> None:
    first = max(d.m1.first_open_ms for d in recorded.values())
    funding_at = (first // EIGHT_HOURS + 2) * EIGHT_HOURS
    async with running(sim_server(recorded, start_ms=funding_at - 3 * MIN)) as server:
        client = connector(server)
        events = Collector(client.user_stream())
        try:
            await client.start()
            await connected(server, 1, route="private")
            await client.place_order(OrderRequest("ETHUSDT", Side.SELL, OrderType.MARKET, D("1.000"), "f-entry"))
            await server.advance(5 * 60)
            funding = await events.wait_for(lambda e: isinstance(e, AccountUpdate) and e.reason == "FUNDING_FEE")
            [income] = await client.income(income_type="FUNDING_FEE")
            assert income.symbol == "ETHUSDT" and income.time_ms == funding.transaction_time_ms
            assert dict(funding.balance_changes)["USDT"] == income.income != 0  # bc = the fee itself
            [usdt] = [b for b in funding.balances if b.asset == "USDT"]
            [rest_usdt] = [b for b in await client.balances() if b.asset == "USDT"]
            assert usdt.wallet_balance == rest_usdt.wallet_balance
            ledger = await client.income()
            assert rest_usdt.wallet_balance == D("10000") + sum(i.income for i in ledger)
        finally:
            await events.close()
            await client.close()


async def test_listen_key_expiry_renews_and_asks_for_reconciliation(server: SimServer, client) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        old_key = server.ctx.listen_key
        server.faults.expire_listen_key()
        await server.advance(1)
        await reconnected(server, 1, route="private")
        reconcile = await events.wait_for(lambda e: isinstance(e, ReconcileNeeded))
        assert "listenKey" in reconcile.reason
        assert server.ctx.listen_key not in (None, old_key)
        # The new stream works: an order placed now is reported.
        await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "after-expiry"))
        await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.client_order_id == "after-expiry")
    finally:
        await events.close()


async def test_keepalive_keeps_the_listen_key_past_its_hour(server: SimServer, client) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        key, first_expiry = server.ctx.listen_key, server.ctx.listen_key_expiry_ms
        await server.advance(31 * 60)  # the connector's 30-minute keepalive comes due on the sim's clock
        async with asyncio.timeout(5):
            while server.ctx.listen_key_expiry_ms == first_expiry:
                await asyncio.sleep(0.005)
        assert server.ctx.listen_key_expiry_ms > first_expiry  # extended by PUT /fapi/v1/listenKey
        await server.advance(40 * 60)  # past the first hour: the key lives on
        assert server.ctx.listen_key == key
        await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "kept-alive"))
        await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.client_order_id == "kept-alive")
        assert not [e for e in events.items if isinstance(e, ReconcileNeeded)]
    finally:
        await events.close()


async def test_a_key_closed_elsewhere_is_renewed_at_keepalive(server: SimServer, client) -> None:
    events = Collector(client.user_stream())
    try:
        await connected(server, 1, route="private")
        old_key = server.ctx.listen_key
        await client.rest.close_listen_key()  # e.g. another process on the same account closed it
        assert server.ctx.listen_key is None
        await server.advance(31 * 60)  # keepalive → -1125 → a new key, a new connection
        reconcile = await events.wait_for(lambda e: isinstance(e, ReconcileNeeded))
        assert "renewed" in reconcile.reason
        assert server.ctx.listen_key not in (None, old_key)
        await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "renewed-1"))
        await events.wait_for(lambda e: isinstance(e, OrderUpdate) and e.order.client_order_id == "renewed-1")
    finally:
        await events.close()
