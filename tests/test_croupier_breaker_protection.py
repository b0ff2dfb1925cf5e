"""An OPEN circuit breaker refuses entries but never a stop: protection is sent regardless.

Against the simulated exchange over loopback, through the real connector and its breakers.
The orders breaker is opened by real transport failures (the simulator answers HTTP 503 to
five entry orders); then the bracket's stop is cancelled by someone else, so protection must
be placed again while the breaker is still OPEN.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import CroupierSettings, ExchangeSettings
from core.errors import CircuitOpen, ExchangeError
from core.types import OrderRequest, OrderType, Side
from exchanges.binance.breaker import BreakerState
from tests.croupier_harness import Rig, decision, recorded

pytestmark = pytest.mark.timeout(60)
QTY = Decimal("0.010")


@pytest.fixture
def data(data_dir: Path):
    return recorded(data_dir)


async def _open_the_orders_breaker(rig: Rig) -> None:
    """Five consecutive transport failures on the orders group (writes are never retried)."""
    threshold = ExchangeSettings().breaker.failure_threshold  # the Rig's connector settings
    rig.server.faults.fail("/fapi/v1/order", status="503", method="POST", count=threshold)
    for n in range(threshold):
        with pytest.raises(ExchangeError) as info:
            await rig.ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, QTY, f"probe{n}"))
        assert not isinstance(info.value, CircuitOpen)
    assert rig.ex.breaker_states()["orders"] is BreakerState.OPEN


async def test_a_lost_stop_is_replaced_while_the_orders_breaker_is_open(data, tmp_path: Path) -> None:
    async with Rig(data, tmp_path, CroupierSettings()) as rig:
        mark = await rig.mark()
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, mark, tp=0.05, sl=0.05), QTY)
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", what="protected")
        first = rig.c.book.get(bid).active_stop
        assert first is not None
        await _open_the_orders_breaker(rig)
        # an entry is refused at once, without reaching the exchange
        before = len(rig.server.venue.engine.open_orders()) + len(rig.server.venue.engine.trades)
        with pytest.raises(CircuitOpen):
            await rig.ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, QTY, "refused1"))
        assert len(rig.server.venue.engine.open_orders()) + len(rig.server.venue.engine.trades) == before
        # the stop disappears (cancelled by hand): the ALGO_UPDATE makes the croupier protect again
        await rig.ex.cancel_algo_order("BTCUSDT", client_algo_id=first.client_id)
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED"
                           and rig.c.book.get(bid).active_stop.client_id != first.client_id, what="re-protected")
        assert rig.ex.breaker_states()["orders"] is BreakerState.OPEN  # still open: the stop went around it
        replacement = rig.c.book.get(bid).active_stop
        on_exchange = [a for a in rig.server.venue.engine.open_algos("BTCUSDT") if a.type is OrderType.STOP_MARKET]
        assert [a.client_algo_id for a in on_exchange] == [replacement.client_id]
        assert on_exchange[0].trigger_price == replacement.price == first.price
        assert await rig.position_qty() == QTY
