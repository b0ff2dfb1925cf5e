"""exchanges.sim.records: an emitted record is a snapshot, not the live order."""

from __future__ import annotations

import copy
from dataclasses import fields
from decimal import Decimal

from core.types import AlgoStatus, OrderStatus, OrderType, Side, TimeInForce, WorkingType
from exchanges.sim.records import SimAlgo, SimOrder


def _values(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in fields(record)}  # type: ignore[arg-type]


def test_snapshots_hold_every_field_and_do_not_follow_the_live_record() -> None:
    order = SimOrder(7, "cX", "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.010"), Decimal("100.5"),
                     TimeInForce.GTC, False, 1_000, executed_qty=Decimal("0.004"), cum_quote=Decimal("0.402"),
                     algo_id=3, good_till_ms=9)
    algo = SimAlgo(11, "cS", "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, Decimal(0), Decimal("99"), Decimal(0),
                   WorkingType.MARK_PRICE, True, False, TimeInForce.GTC, True, 1_000, callback_rate=Decimal("0.5"))
    for live in (order, algo):
        snap = live.snapshot()
        assert snap is not live and _values(snap) == _values(copy.copy(live))
    order_then, algo_then = order.snapshot(), algo.snapshot()
    order.status, order.executed_qty = OrderStatus.FILLED, Decimal("0.010")
    algo.status = AlgoStatus.TRIGGERED
    assert order_then.status is OrderStatus.NEW and order_then.executed_qty == Decimal("0.004")
    assert algo_then.status is AlgoStatus.NEW
    assert order.snapshot().status is OrderStatus.FILLED and algo.snapshot().status is AlgoStatus.TRIGGERED
