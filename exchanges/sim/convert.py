"""Simulator records → kernel records (used by ``local.py``)."""

from __future__ import annotations

from core.events import AccountConfigUpdate, AccountUpdate, AlgoUpdate, MarginCall, OrderUpdate, UserEvent
from core.types import (
    ZERO,
    AlgoOrder,
    Balance,
    Fill,
    Order,
    Position,
)
from exchanges.sim.records import (
    AccountEvent,
    AlgoEvent,
    ConfigEvent,
    MarginCallEvent,
    OrderEvent,
    PositionState,
    SimAlgo,
    SimEvent,
    SimOrder,
    TradeRecord,
)


def order(o: SimOrder) -> Order:
    return Order(
        symbol=o.symbol, order_id=o.order_id, client_order_id=o.client_order_id, side=o.side, type=o.type,
        status=o.status, quantity=o.orig_qty, price=o.price, executed_qty=o.executed_qty,
        avg_price=o.avg_price, time_in_force=o.time_in_force, reduce_only=o.reduce_only,
        close_position=o.close_position, position_side=o.position_side, orig_type=o.orig_type,
        update_time_ms=o.update_ms,
    )


def algo(a: SimAlgo) -> AlgoOrder:
    return AlgoOrder(
        symbol=a.symbol, algo_id=a.algo_id, client_algo_id=a.client_algo_id, side=a.side, type=a.type,
        status=a.status, quantity=a.quantity, trigger_price=a.trigger_price, price=a.price,
        working_type=a.working_type, close_position=a.close_position, reduce_only=a.reduce_only,
        time_in_force=a.time_in_force, position_side=a.position_side, activate_price=a.activate_price,
        callback_rate=a.callback_rate, actual_order_id=a.actual_order_id, executed_qty=a.executed_qty,
        avg_price=a.avg_price, reason=a.reason, create_time_ms=a.create_ms, update_time_ms=a.update_ms,
    )


def position(p: PositionState) -> Position:
    return Position(
        symbol=p.symbol, quantity=p.qty, entry_price=p.entry_price, mark_price=p.mark_price,
        unrealized_pnl=p.unrealized, leverage=p.leverage, margin_type=p.margin_type,
        break_even_price=p.break_even, isolated_wallet=p.isolated_wallet, update_time_ms=p.update_ms,
        liquidation_price=p.liquidation_price,
    )


def fill(t: TradeRecord, client_order_id: str) -> Fill:
    return Fill(
        symbol=t.symbol, order_id=t.order_id, trade_id=t.trade.trade_id, client_order_id=client_order_id,
        side=t.side, price=t.trade.price, quantity=t.trade.qty, commission=t.trade.commission,
        commission_asset="USDT", realized_pnl=t.trade.realized_pnl, is_maker=t.trade.maker, time_ms=t.time_ms,
    )


def user_event(ev: SimEvent) -> UserEvent:
    """One engine event as the kernel's user-data event."""
    if isinstance(ev, OrderEvent):
        f = None
        if ev.trade is not None:
            rec = TradeRecord(ev.order.symbol, ev.order.order_id, ev.order.side, ev.trade, ev.time_ms)
            f = fill(rec, ev.order.client_order_id)
        return OrderUpdate(order(ev.order), ev.execution, ev.time_ms, f,
                           ev.order.expiry_reason if ev.order.expiry_reason != "0" else "")
    if isinstance(ev, AlgoEvent):
        return AlgoUpdate(algo(ev.algo), ev.time_ms)
    if isinstance(ev, AccountEvent):
        bal = Balance("USDT", ev.wallet, ev.cross_wallet, ev.cross_wallet, ZERO, ev.time_ms)
        return AccountUpdate(ev.reason, (bal,), tuple(position(p) for p in ev.positions), ev.time_ms,
                             ev.time_ms, ev.symbol, (("USDT", ev.balance_change),) if ev.reason != "ORDER" else ())
    if isinstance(ev, ConfigEvent):
        return AccountConfigUpdate(ev.symbol, ev.leverage, None, ev.time_ms)
    if isinstance(ev, MarginCallEvent):
        return MarginCall(tuple(p.symbol for p in ev.positions), ev.time_ms)
    raise TypeError(f"unknown simulator event {type(ev).__name__}")
