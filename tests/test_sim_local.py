"""The in-process ExchangePort over the simulated venue, on real recorded candles."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pytest

from config.settings import SimSettings
from core.errors import Rejected
from core.events import AccountUpdate, AlgoUpdate, CandleClosed, MarkPriceUpdate, OrderUpdate
from core.ports import ExchangePort
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    MarginType,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Timeframe,
    TimeInForce,
)
from exchanges.sim.feed import SymbolData, load_symbol_data
from exchanges.sim.local import LocalExchange, engine_config, venue_config
from exchanges.sim.venue import Venue


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return {s: load_symbol_data(data_dir / "futures-2023", s) for s in ("BTCUSDT", "ETHUSDT")}


@pytest.fixture
def ex(recorded: dict[str, SymbolData]) -> LocalExchange:
    s = SimSettings()
    return LocalExchange(Venue(recorded, engine_config(s), venue_config(s, intrabar_events=False), warmup_bars=300))


async def test_implements_port_and_serves_history(ex: LocalExchange) -> None:
    assert isinstance(ex, ExchangePort)
    rules = await ex.symbol_rules(["BTCUSDT"])
    assert rules["BTCUSDT"].tick_size == D("0.10") and rules["BTCUSDT"].min_notional == D(100)
    hist = await ex.klines("BTCUSDT", Timeframe.M1, limit=200)
    assert len(hist) == 200 and hist[-1].close_time_ms < await ex.server_time_ms() + 1
    assert (await ex.klines("BTCUSDT", Timeframe.M5, limit=10))[-1].timeframe is Timeframe.M5


async def test_replay_bracket_through_streams(ex: LocalExchange) -> None:
    seen = []

    async def collect() -> None:
        async for ev in ex.user_stream():
            seen.append(ev)

    reader = asyncio.create_task(collect())
    try:
        entry = await ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "entry-1"))
        assert entry.status is OrderStatus.FILLED and entry.executed_qty == D("0.010")
        mark = (await ex.mark_price("BTCUSDT")).mark_price
        sl = await ex.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "sl-1",
            trigger_price=(mark * D("0.999")).quantize(D("0.1")), close_position=True))
        tp = await ex.place_algo_order(AlgoOrderRequest(
            "BTCUSDT", Side.SELL, OrderType.TAKE_PROFIT_MARKET, "tp-1",
            trigger_price=(mark * D("1.001")).quantize(D("0.1")), close_position=True))
        candles = 0
        async for ev in ex.market_stream(["BTCUSDT"], [Timeframe.M1, Timeframe.M5]):
            if isinstance(ev, CandleClosed):
                candles += 1
            if not await ex.positions("BTCUSDT") or candles > 3000:
                break
        await asyncio.sleep(0)
        assert not await ex.positions("BTCUSDT")
        finals = {(await ex.query_algo_order("BTCUSDT", algo_id=a.algo_id)).status for a in (sl, tp)}
        assert finals == {AlgoStatus.FINISHED, AlgoStatus.EXPIRED}
        assert any(isinstance(e, OrderUpdate) and e.fill for e in seen)
        assert any(isinstance(e, AlgoUpdate) and e.algo.status is AlgoStatus.TRIGGERED for e in seen)
        assert any(isinstance(e, AccountUpdate) and e.reason == "ORDER" for e in seen)
        bal = (await ex.balances())[0]
        incomes = await ex.income()
        assert bal.wallet_balance == D("10000.0") + sum((i.income for i in incomes), D(0))
        trades = await ex.user_trades("BTCUSDT")
        assert len(trades) == 2 and trades[0].client_order_id == "entry-1"
    finally:
        await ex.close()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader


async def test_rejections_are_kernel_errors_with_binance_codes(ex: LocalExchange) -> None:
    mark = (await ex.mark_price("BTCUSDT")).mark_price
    with pytest.raises(Rejected) as info:
        await ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"), "gtx-1",
                                          price=(mark * D("1.001")).quantize(D("0.1")), time_in_force=TimeInForce.GTX))
    assert info.value.code == -5022 and "Post Only" in info.value.msg
    assert await ex.open_orders() == []
    with pytest.raises(Rejected) as info:
        await ex.query_order("BTCUSDT", order_id=42)
    assert info.value.code == -2013
    await ex.set_margin_type("BTCUSDT", MarginType.CROSSED)  # unchanged: -4046 counts as success
    await ex.set_position_mode(False)
    assert await ex.set_leverage("BTCUSDT", 10) == 10


async def test_advance_moves_clock_and_marks(ex: LocalExchange) -> None:
    t0 = ex.clock.now_ms()
    await ex.advance(120)
    assert ex.clock.now_ms() == t0 + 120_000 == await ex.server_time_ms()
    got = []
    async for ev in ex.market_stream(["ETHUSDT"], [Timeframe.M1]):
        got.append(ev)
        if len(got) >= 4:
            break
    assert any(isinstance(e, MarkPriceUpdate) for e in got) and any(isinstance(e, CandleClosed) for e in got)


async def test_unread_user_events_overflow_into_reconcile_needed(ex: LocalExchange, monkeypatch) -> None:
    import exchanges.sim.local as local_mod
    from core.events import ReconcileNeeded

    monkeypatch.setattr(local_mod, "USER_QUEUE_MAX", 3)
    await ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), "o-1"))  # 3+ events
    await ex.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, D("0.010"), "o-2", reduce_only=True))
    stream = ex.user_stream()
    first = await anext(stream)
    assert isinstance(first, ReconcileNeeded)
    await ex.close()
