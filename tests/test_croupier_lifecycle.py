"""Bracket lifecycle against the simulated exchange over loopback, through the real connector."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import CroupierSettings
from core.types import Side
from croupier.ids import Leg
from tests.croupier_harness import Rig, decision, recorded

pytestmark = pytest.mark.timeout(60)
QTY = Decimal("0.010")


@pytest.fixture
def data(data_dir: Path):
    return recorded(data_dir)


async def test_take_profit_hit_cancels_the_stop_and_reports_the_trade(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        # the recording falls from here: a short's take-profit is reached first
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.SELL, mark, tp=0.002, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        b = rig.c.book.get(bid)
        sl, tp = b.active_stop, b.live_legs(Leg.TAKE_PROFIT)[0]
        assert sl is not None and sl.price > b.avg_entry_price > tp.price
        orders, algos = await rig.open_orders()
        assert {a.client_algo_id for a in algos} == {sl.client_id, tp.client_id}
        await rig.advance_until(lambda: rig.state(bid) == "CLOSED", 3 * 3600, step=300)
        await rig.wait_for(lambda: bool(rig.closed), what="trade report")
        trade = rig.closed[0]
        assert trade.exit_reason == "take_profit" and trade.quantity == QTY and trade.gross_pnl > 0
        assert trade.fees > 0
        assert await rig.position_qty() == 0
        assert await rig.open_orders() == ([], [])


async def test_stop_loss_hit(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.002), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED")
        await rig.advance_until(lambda: rig.state(bid) == "CLOSED", 3 * 3600, step=300)
        await rig.wait_for(lambda: bool(rig.closed))
        assert rig.closed[0].exit_reason == "stop_loss" and rig.closed[0].gross_pnl < 0
        assert await rig.position_qty() == 0
        assert await rig.open_orders() == ([], [])


async def test_tp_and_sl_in_one_candle_never_open_a_reverse_position(data, tmp_path: Path) -> None:
    # Both triggers one tick away: one 1-minute bar crosses both.
    async with Rig(data, tmp_path, CroupierSettings(stop_close_position=False)) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.0004, sl=0.0004), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED")
        await rig.advance_until(lambda: rig.state(bid) == "CLOSED", 3 * 3600)
        await rig.advance(120)
        assert await rig.position_qty() == 0
        assert await rig.open_orders() == ([], [])
        assert rig.c.book.get(bid).exit_filled_qty == QTY


async def test_partial_entry_fills_resize_protection_to_cover_the_filled_quantity(data, tmp_path: Path) -> None:
    settings = CroupierSettings(stop_close_position=False, take_profit="limit")
    async with Rig(data, tmp_path, settings) as rig:
        rig.server.faults.split_fills_into(4)
        # the REST reply trails the stream: the four partial fills arrive first, one by one
        rig.server.faults.delay_response("/fapi/v1/order", 0.5, method="POST")
        mark = await rig.mark()
        qty = Decimal("0.040")
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.05), qty)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED" and not rig.c.book.get(bid).needs_resize
                           and len(rig.c.book.get(bid).live_legs(Leg.STOP_LOSS)) == 1
                           and len(rig.c.book.get(bid).live_legs(Leg.TAKE_PROFIT)) == 1, what="resized")
        b = rig.c.book.get(bid)
        stops = [r for r in b.legs if r.leg is Leg.STOP_LOSS]
        assert len(stops) >= 2, "protection placed on the first fill, then resized"
        assert stops[0].quantity < qty
        assert b.active_stop.quantity == qty
        orders, algos = await rig.open_orders()
        assert [a.quantity for a in algos] == [qty]
        assert [o.quantity for o in orders] == [qty] and orders[0].reduce_only
        assert await rig.position_qty() == qty


async def test_limit_entry_that_never_fills_times_out_and_releases_the_symbol(data, tmp_path: Path) -> None:
    settings = CroupierSettings(entry_type="LIMIT", entry_time_in_force="GTC", entry_timeout_s=120)
    async with Rig(data, tmp_path, settings) as rig:
        mark = await rig.mark()
        far = (mark * Decimal("0.8")).quantize(Decimal("0.1"))
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, far), QTY)
        assert bid is not None and rig.c.has_bracket("BTCUSDT")
        import asyncio
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(rig.c.run())
            await rig.advance_until(lambda: rig.state(bid) == "CANCELLED", 600, step=30)
            runner.cancel()
        assert not rig.c.has_bracket("BTCUSDT")
        assert await rig.open_orders() == ([], [])
        assert await rig.position_qty() == 0
        assert rig.closed == []


async def test_protection_rejected_flattens_and_fails_with_the_reason(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings(protect_attempts=2)) as rig:
        rig.server.faults.reject_next_algo(10)
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "FAILED", what="failed")
        b = rig.c.book.get(bid)
        assert "protection failed" in b.failure_reason
        assert await rig.position_qty() == 0
        rig.server.faults.reject_algos = 0
        await rig.wait_for(lambda: bool(rig.closed))
        assert rig.closed[0].exit_reason == "failed"
        assert await rig.open_orders() == ([], [])


async def test_stop_beyond_the_market_flattens_at_once(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        # a negative stop distance puts the stop on the wrong side: -2021 would immediately trigger
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, sl=-0.01), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "FAILED")
        assert "-2021" in rig.c.book.get(bid).failure_reason
        assert sum(1 for r in rig.c.book.get(bid).legs if r.leg is Leg.STOP_LOSS) == 1
        assert await rig.position_qty() == 0


async def test_unknown_entry_outcome_is_resolved_by_client_id_without_a_duplicate(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        rig.server.faults.lose_response("/fapi/v1/order", mode="503", method="POST")
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED")
        assert await rig.position_qty() == QTY  # one entry, not two
        entry = rig.c.book.get(bid).entry_leg
        assert entry is not None and entry.attempt == 0 and entry.client_id.endswith("E0")
        assert (await rig.ex.query_order("BTCUSDT", client_order_id=entry.client_id)).executed_qty == QTY
        assert rig.c.journal is not None and rig.c.journal.pending() == []
