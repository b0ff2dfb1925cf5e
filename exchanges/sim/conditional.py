"""Conditional orders in the simulated Algo Service (part of ``MatchingEngine``).

Lifecycle as on Binance (BINANCE.md §3): NEW → TRIGGERING → TRIGGERED (a real order with its
own orderId, ``actual_order_id``/``ai``; its clientOrderId is the clientAlgoId) → FINISHED
when that order is final; or CANCELED, EXPIRED (a closePosition order whose position closed),
REJECTED (reduce-only with nothing to reduce, insufficient margin) with the reason in
``reason``/``rm``. Placement answers -2021 when the order would trigger at once.
This mixin holds the algo-order half of the engine; state lives on the engine.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from core.types import (
    ZERO,
    AlgoStatus,
    ExecutionType,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
    WorkingType,
)
from exchanges.sim import algo as algo_rules
from exchanges.sim.errors import SimError, err
from exchanges.sim.records import AlgoEvent, PriceState, SimAlgo, SimOrder

if TYPE_CHECKING:
    from exchanges.sim.account import Account
    from exchanges.sim.records import SimEvent
    from exchanges.sim.rules import SymbolSpec

MAX_OPEN_ALGOS = 200  # Binance: 200 conditional orders across all symbols (2025-12-29)


class ConditionalOrders:
    """STOP / TAKE_PROFIT (limit and market) and TRAILING_STOP_MARKET orders."""

    if TYPE_CHECKING:  # provided by MatchingEngine
        account: Account
        algos: dict[int, SimAlgo]
        prices: dict[str, PriceState]
        events: list[SimEvent]
        _algo_seq: int
        _order_seq: int

        def spec(self, symbol: str) -> SymbolSpec: ...
        def open_algos(self, symbol: str | None = None) -> list[SimAlgo]: ...
        def _add_algo(self, a: SimAlgo) -> None: ...
        def _add_order(self, order: SimOrder) -> None: ...
        def _next_client_id(self, prefix: str) -> str: ...
        def _check_mode(self, position_side: PositionSide) -> None: ...
        def _check_client_id(self, client_id: str, *, algo: bool) -> None: ...
        def _check_qty(self, spec: SymbolSpec, qty: Decimal) -> None: ...
        def _check_price(self, spec: SymbolSpec, price: Decimal) -> None: ...
        def _check_margin(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None: ...
        def _increase_qty(self, symbol: str, side: Side, qty: Decimal) -> Decimal: ...
        def _emit_order(self, order: SimOrder, execution: ExecutionType, now_ms: int) -> None: ...
        def _take(self, order: SimOrder, now_ms: int, crossed_at: Decimal | None) -> None: ...

    def place_algo(
        self, *, symbol: str, side: Side, order_type: OrderType, now_ms: int,
        quantity: Decimal | None = None, trigger_price: Decimal | None = None,
        price: Decimal | None = None, working_type: WorkingType = WorkingType.CONTRACT_PRICE,
        close_position: bool = False, reduce_only: bool = False,
        time_in_force: TimeInForce = TimeInForce.GTC, price_protect: bool = False,
        activate_price: Decimal | None = None, callback_rate: Decimal | None = None,
        client_algo_id: str | None = None, position_side: PositionSide = PositionSide.BOTH,
    ) -> SimAlgo:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL)."""
        spec = self.spec(symbol)
        if not order_type.is_conditional:
            raise err(-1116)
        self._check_mode(position_side)
        if client_algo_id is None:
            client_algo_id = self._next_client_id("simalgo")
        self._check_client_id(client_algo_id, algo=True)
        if close_position:
            if order_type not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
                raise SimError(-4136, "Target strategy invalid for orderType " + order_type.value + ",closePosition true")
            if quantity is not None or reduce_only:
                raise SimError(-4138, "Reduce only must be true or closePosition when it is a close position order.")
            qty = ZERO
        else:
            if quantity is None:
                raise err(-1102, "quantity")
            self._check_qty(spec, quantity)
            qty = quantity
        if order_type is OrderType.TRAILING_STOP_MARKET:
            if callback_rate is None:
                raise err(-1102, "callbackRate")
            if not (Decimal("0.1") <= callback_rate <= Decimal(20)):
                raise SimError(-2007, "Invalid callBack rate.")
            if activate_price is not None:
                self._check_price(spec, activate_price)
            trigger = ZERO
        else:
            if trigger_price is None:
                raise err(-1102, "triggerPrice")
            self._check_price(spec, trigger_price)
            trigger = trigger_price
        if order_type in (OrderType.STOP, OrderType.TAKE_PROFIT):
            if price is None:
                raise err(-1102, "price")
            self._check_price(spec, price)
        if len(self.open_algos()) >= MAX_OPEN_ALGOS:
            raise SimError(-4045, "Reach max stop order limit.")
        a = SimAlgo(
            algo_id=self._algo_seq + 1, client_algo_id=client_algo_id, symbol=symbol, side=side,
            type=order_type, quantity=qty, trigger_price=trigger,
            price=price if price is not None else ZERO, working_type=working_type,
            close_position=close_position, reduce_only=reduce_only, time_in_force=time_in_force,
            price_protect=price_protect, create_ms=now_ms, update_ms=now_ms,
            activate_price=activate_price, callback_rate=callback_rate, position_side=position_side,
        )
        state = self.prices.get(symbol)
        if state is not None and algo_rules.would_trigger_now(a, algo_rules.reference(a, state.last, state.mark)):
            raise err(-2021)
        if reduce_only and not close_position and self._increase_qty(symbol, side, qty) == qty \
                and self.account.position(symbol).qty:
            raise err(-2022)
        self._algo_seq += 1
        self._add_algo(a)
        self.events.append(AlgoEvent(a.snapshot(), now_ms))
        return a.snapshot()

    def reject_algo(self, algo_id: int, now_ms: int, reason: str) -> SimAlgo:
        """Move an open algo order to REJECTED with ``reason`` (the Algo Service refused it)."""
        a = self.algos[algo_id]
        self._algo_final(a, AlgoStatus.REJECTED, now_ms, reason)
        return a.snapshot()

    def _find_algo(self, algo_id: int | None, client_algo_id: str | None) -> SimAlgo | None:
        if algo_id is not None:
            return self.algos.get(algo_id)
        if client_algo_id is not None:
            found = [a for a in self.algos.values() if a.client_algo_id == client_algo_id]
            open_ = [a for a in found if a.status.is_open]
            return (open_ or found or [None])[-1]
        raise err(-1102, "algoId")

    def get_algo(self, *, algo_id: int | None = None, client_algo_id: str | None = None) -> SimAlgo:
        a = self._find_algo(algo_id, client_algo_id)
        if a is None:
            raise err(-2013)
        return a.snapshot()

    def cancel_algo(self, *, now_ms: int, algo_id: int | None = None,
                    client_algo_id: str | None = None) -> SimAlgo:
        a = self._find_algo(algo_id, client_algo_id)
        if a is None or a.status is not AlgoStatus.NEW:
            raise err(-2011)
        self._algo_final(a, AlgoStatus.CANCELED, now_ms, "")
        return a.snapshot()

    def cancel_all_algos(self, symbol: str, now_ms: int) -> int:
        self.spec(symbol)
        algos = [a for a in self.open_algos(symbol) if a.status is AlgoStatus.NEW]
        for a in algos:
            self._algo_final(a, AlgoStatus.CANCELED, now_ms, "")
        return len(algos)

    def _algo_final(self, a: SimAlgo, status: AlgoStatus, now_ms: int, reason: str) -> None:
        a.status = status
        a.reason = reason
        a.update_ms = now_ms
        self.events.append(AlgoEvent(a.snapshot(), now_ms))

    def _run_triggers(self, symbol: str, state: PriceState, prev_last: Decimal, now_ms: int) -> None:
        for a in sorted(self.open_algos(symbol), key=lambda x: x.algo_id):
            if a.status is not AlgoStatus.NEW:
                continue
            was_active = a.activated
            fired = algo_rules.step(a, algo_rules.reference(a, state.last, state.mark))
            if a.activated and not was_active:
                # Trailing stop activated: Binance pushes a second NEW with ia=true (2026-08).
                a.update_ms = now_ms
                self.events.append(AlgoEvent(a.snapshot(), now_ms))
            if fired:
                crossed = None
                if a.working_type is WorkingType.CONTRACT_PRICE or state.mark == state.last:
                    if not algo_rules.condition_met(a.type if a.type is not OrderType.TRAILING_STOP_MARKET
                                                    else OrderType.STOP_MARKET, a.side, a.trigger_price, prev_last):
                        crossed = a.trigger_price
                self._trigger(a, now_ms, crossed)

    def _trigger(self, a: SimAlgo, now_ms: int, crossed_at: Decimal | None) -> None:
        a.status = AlgoStatus.TRIGGERING
        a.trigger_ms = now_ms
        a.update_ms = now_ms
        self.events.append(AlgoEvent(a.snapshot(), now_ms))
        pos = self.account.position(a.symbol).qty
        opposing = pos != 0 and (pos > 0) != (a.side is Side.BUY)
        if a.close_position:
            if not opposing:
                self._algo_final(a, AlgoStatus.EXPIRED, now_ms, "Position is closed")
                return
            qty = abs(pos)
        elif a.reduce_only:
            if not opposing:
                self._algo_final(a, AlgoStatus.REJECTED, now_ms, "Reduce Only reject")
                return
            qty = min(a.quantity, abs(pos))
        else:
            qty = a.quantity
            if self._increase_qty(a.symbol, a.side, qty):
                try:
                    self._check_margin(a.symbol, a.side, qty, self.prices[a.symbol].last)
                except SimError:
                    self._algo_final(a, AlgoStatus.REJECTED, now_ms, "Margin is insufficient")
                    return
        child_type = OrderType.LIMIT if a.type in (OrderType.STOP, OrderType.TAKE_PROFIT) else OrderType.MARKET
        self._order_seq += 1
        child = SimOrder(
            order_id=self._order_seq, client_order_id=a.client_algo_id, symbol=a.symbol, side=a.side,
            type=child_type, orig_qty=qty, price=a.price if child_type is OrderType.LIMIT else ZERO,
            time_in_force=a.time_in_force if child_type is OrderType.LIMIT else TimeInForce.GTC,
            reduce_only=a.reduce_only, time_ms=now_ms, update_ms=now_ms, orig_type=a.type,
            close_position=a.close_position, stop_price=a.trigger_price, working_type=a.working_type,
            price_protect=a.price_protect, algo_id=a.algo_id,
        )
        self._add_order(child)
        a.actual_order_id = child.order_id
        a.actual_type = child_type
        self._emit_order(child, ExecutionType.NEW, now_ms)
        a.status = AlgoStatus.TRIGGERED
        self.events.append(AlgoEvent(a.snapshot(), now_ms))
        last = self.prices[a.symbol].last
        if child_type is OrderType.MARKET:
            self._take(child, now_ms, crossed_at)
        elif (child.side is Side.BUY and child.price >= last) or (child.side is Side.SELL and child.price <= last):
            self._take(child, now_ms, None)

    def _settle_algo_child(self, order: SimOrder, now_ms: int) -> None:
        if not order.algo_id or order.status.is_open:
            return
        a = self.algos.get(order.algo_id)
        if a is None or a.status is not AlgoStatus.TRIGGERED:
            return
        a.executed_qty = order.executed_qty
        a.avg_price = order.avg_price
        self._algo_final(a, AlgoStatus.FINISHED, now_ms, "")
