"""Sweep, reconciliation and restart recovery against the simulator through the connector."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import CroupierSettings
from core.types import AlgoOrderRequest, OrderRequest, OrderType, Side, TimeInForce
from croupier.ids import Leg
from croupier.sweep import sweep
from tests.croupier_harness import Rig, decision, recorded

pytestmark = pytest.mark.timeout(60)
QTY = Decimal("0.010")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
def data(data_dir: Path):
    return recorded(data_dir, SYMBOLS)


async def _mess(rig: Rig) -> None:
    """Positions, resting LIMIT orders and algo orders on two symbols, none of them Casino's."""
    for symbol, qty in (("BTCUSDT", Decimal("0.010")), ("ETHUSDT", Decimal("0.10"))):
        mark = await rig.mark(symbol)
        await rig.ex.place_order(OrderRequest(symbol, Side.BUY, OrderType.MARKET, qty, f"man{symbol}"))
        low = (mark * Decimal("0.9")).quantize(Decimal("0.1"))
        await rig.ex.place_order(OrderRequest(symbol, Side.BUY, OrderType.LIMIT, qty, f"lim{symbol}", price=low,
                                              time_in_force=TimeInForce.GTC))
        await rig.ex.place_algo_order(AlgoOrderRequest(symbol, Side.SELL, OrderType.STOP_MARKET, f"stp{symbol}",
                                                       trigger_price=low, close_position=True))
        await rig.ex.place_algo_order(AlgoOrderRequest(symbol, Side.BUY, OrderType.TAKE_PROFIT_MARKET,
                                                       f"tpb{symbol}", trigger_price=low, quantity=qty))


async def test_sweep_takes_a_messy_account_flat_within_three_passes(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        await _mess(rig)
        assert len(await rig.ex.positions()) == 2
        result = await sweep(rig.ex, None, passes=3)
        assert result.flat and result.passes <= 3, result
        assert result.positions_closed == 2 and result.orders_cancelled == 6
        assert [p for p in await rig.ex.positions() if not p.is_flat] == []
        assert await rig.ex.open_orders() == [] and await rig.ex.open_algo_orders() == []


async def test_sweep_limited_to_symbols_leaves_the_others(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        await _mess(rig)
        result = await sweep(rig.ex, ["ETHUSDT"], passes=3)
        assert result.flat and result.positions_closed == 1 and result.orders_cancelled == 3
        assert [p.symbol for p in await rig.ex.positions() if not p.is_flat] == ["BTCUSDT"]


async def test_start_adopts_unknown_positions_protects_them_and_cancels_orphans(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path / "first", CroupierSettings()) as rig:
        await _mess(rig)
        # a fresh croupier on this account: reconciliation before any trading
        await rig.disconnect()
        croupier = await rig.connect()
        kinds = {d.kind for d in (await croupier.reconcile("check")).discrepancies}
        assert "unknown_position" not in kinds  # adopted at start already
        status = croupier.status()
        adopted = {b["symbol"]: b for b in status["brackets"]}
        assert set(adopted) == set(SYMBOLS) and all(b["state"] == "PROTECTED" for b in adopted.values())
        for symbol in SYMBOLS:
            algos = await rig.ex.open_algo_orders(symbol)
            ours = [a for a in algos if a.client_algo_id.startswith("c")]
            assert len([a for a in ours if a.type is OrderType.STOP_MARKET]) == 1
        # the foreign buy-TP on a long is not reduce-only-protective of a gone position: left alone;
        # nothing of ours is orphaned
        assert croupier.open_bracket_count() == 2


async def test_adoption_policy_flatten_closes_unknown_positions(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings(adoption_policy="flatten")) as rig:
        await rig.ex.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, QTY, "manual1"))
        await rig.disconnect()
        croupier = await rig.connect()
        await rig.wait_for(lambda: croupier.open_bracket_count() == 0)
        assert await rig.position_qty() == 0


async def test_restart_restores_brackets_and_replaces_a_lost_stop_first(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED")
        stop = rig.c.book.get(bid).active_stop
        assert stop is not None
        await rig.disconnect()  # the process "dies"; meanwhile someone cancels the stop
        await rig.ex.cancel_algo_order("BTCUSDT", client_algo_id=stop.client_id)
        await rig.exchange.close()
        croupier = await rig.connect()
        b = croupier.book.get(bid)
        assert b.state.value == "PROTECTED" and b.active_stop is not None
        assert b.active_stop.client_id != stop.client_id
        algos = await rig.ex.open_algo_orders("BTCUSDT")
        assert sorted(a.type.value for a in algos) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
        # positions and realized PnL agree with the exchange
        assert croupier.tracker.position("BTCUSDT").quantity == await rig.position_qty()


async def test_reconcile_books_a_position_closed_outside_and_cancels_its_protection(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED")
        await rig.disconnect()
        await rig.ex.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, QTY, "byhand",
                                              reduce_only=True))
        await rig.exchange.close()
        croupier = await rig.connect()
        await rig.wait_for(lambda: croupier.book.get(bid).state.value == "CLOSED")
        assert croupier.book.get(bid).close_reason.startswith("outside")
        assert await rig.open_orders() == ([], [])
        assert Leg.STOP_LOSS in {r.leg for r in croupier.book.get(bid).legs}
