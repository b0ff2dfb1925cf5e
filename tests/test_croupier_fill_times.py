"""A closed trade carries the exchange's fill times, not the moment the croupier heard of them.

Against the simulated exchange over loopback (manual clock, recorded BTCUSDT candles), through
the real connector. Time is advanced in chunks of several minutes, so the croupier learns of a
fill only at the end of the chunk in which it happened: a trade stamped with our clock would
show the chunk's end, the exchange's userTrades show the real trade time.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import CroupierSettings
from core.types import Fill, OrderRequest, OrderType, Side
from croupier.croupier import ClosedTrade
from tests.croupier_harness import Rig, decision, recorded

pytestmark = pytest.mark.timeout(60)
QTY = Decimal("0.010")
STEP_S = 300.0  # five simulated minutes per advance: fills land inside a step, not at its end


@pytest.fixture
def data(data_dir: Path):
    return recorded(data_dir)


async def _fills(rig: Rig, trade: ClosedTrade) -> tuple[list[Fill], list[Fill]]:
    """The exchange's own record of the trade: (entry fills, exit fills)."""
    fills = await rig.ex.user_trades(trade.symbol)
    entry = [f for f in fills if f.side is trade.side]
    exits = [f for f in fills if f.side is trade.side.opposite]
    assert sum(f.quantity for f in entry) == trade.quantity == sum(f.quantity for f in exits), fills
    return entry, exits


async def test_take_profit_exit_is_stamped_with_the_fill_time(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        # the recording falls from here: a short's take-profit is reached first
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.SELL, mark, tp=0.002, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        await rig.advance_until(lambda: rig.state(bid) == "CLOSED", 3 * 3600, step=STEP_S)
        await rig.wait_for(lambda: bool(rig.closed), what="trade report")
        trade = rig.closed[0]
        assert trade.exit_reason == "take_profit"
        entry, exits = await _fills(rig, trade)
        assert trade.entry_time_ms == min(f.time_ms for f in entry)
        assert trade.exit_time_ms == max(f.time_ms for f in exits)
        # the croupier learned of it at the end of the step, later than it happened
        learned = rig.c.book.get(bid).closed_ms
        assert learned is not None and trade.exit_time_ms < learned


async def test_exit_learned_by_reconciliation_after_a_restart_keeps_the_fill_time(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.SELL, mark, tp=0.002, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        await rig.disconnect()  # the process "dies"; the take-profit fills while nobody listens
        for _ in range(int(3 * 3600 / STEP_S)):
            await rig.server.advance(STEP_S)
            if not rig.server.venue.engine.open_algos("BTCUSDT"):
                break
        assert not rig.server.venue.engine.open_algos("BTCUSDT"), "the take-profit never triggered"
        restarted_ms = rig.server.clock.now_ms()
        croupier = await rig.connect()  # recovery + reconciliation find the bracket closed on the exchange
        assert croupier.book.get(bid).state.value == "CLOSED"
        async with asyncio.TaskGroup() as tg:  # the croupier's loop reports it on its first turn:
            runner = tg.create_task(croupier.run())  # no grace period, its exit fill was found in userTrades
            await rig.wait_for(lambda: bool(rig.closed), what="trade report")
            runner.cancel()
        trade = rig.closed[0]
        assert trade.bracket_id == bid and trade.exit_reason == "take_profit"
        entry, exits = await _fills(rig, trade)
        assert trade.entry_time_ms == min(f.time_ms for f in entry)
        assert trade.exit_time_ms == max(f.time_ms for f in exits) < restarted_ms
        # and the money of that exit is booked: flat, its PnL and both commissions
        assert croupier.tracker.position("BTCUSDT").quantity == 0
        assert croupier.tracker.realized_pnl() == sum(f.realized_pnl for f in entry + exits) > 0
        assert trade.fees == sum(f.commission for f in entry + exits) > 0


async def test_exit_by_hand_while_away_is_booked_at_the_hand_trade_price_and_time(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        await rig.disconnect()
        await rig.advance(STEP_S)  # later, someone closes the position by hand
        hand = await rig.ex.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, QTY, "byhand",
                                                     reduce_only=True))
        await rig.exchange.close()
        await rig.advance(STEP_S)
        croupier = await rig.connect()  # reconciliation: the position is gone, booked from userTrades
        assert croupier.book.get(bid).state.value == "CLOSED"
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(croupier.run())
            await rig.wait_for(lambda: bool(rig.closed), what="trade report")
            runner.cancel()
        trade = rig.closed[0]
        assert trade.exit_reason == "external"
        entry, exits = await _fills(rig, trade)
        assert [f.order_id for f in exits] == [hand.order_id]
        assert trade.exit_price == exits[0].price and trade.exit_time_ms == exits[0].time_ms
        assert trade.exit_time_ms < rig.server.clock.now_ms() - 60_000  # not when we learned of it
        assert trade.gross_pnl == sum(f.realized_pnl for f in entry + exits)
        assert trade.fees == sum(f.commission for f in entry + exits)


async def test_limit_entry_filled_inside_a_step_is_stamped_with_its_fill_time(data, tmp_path: Path) -> None:
    settings = CroupierSettings(entry_type="LIMIT", entry_time_in_force="GTC", entry_timeout_s=24 * 3600)
    async with Rig(data, tmp_path, settings) as rig:
        mark = await rig.mark()
        # a long resting 0.2 % under the market: it fills when the (falling) recording gets there
        below = (mark * Decimal("0.998")).quantize(Decimal("0.1"))
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, below, tp=0.05, sl=0.05), QTY)
        assert bid is not None and rig.state(bid) == "ENTRY_SENT"
        await rig.advance_until(lambda: rig.c.book.get(bid).entry_filled_qty == QTY, 3 * 3600, step=STEP_S)
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        await rig.c.shutdown("flatten")
        await rig.wait_for(lambda: bool(rig.closed), what="trade report")
        trade = rig.closed[0]
        entry, exits = await _fills(rig, trade)
        assert trade.entry_time_ms == min(f.time_ms for f in entry)
        assert trade.exit_time_ms == max(f.time_ms for f in exits)
        learned = rig.c.book.get(bid).first_fill_ms  # our clock, at the end of the step
        assert learned is not None and trade.entry_time_ms < learned
