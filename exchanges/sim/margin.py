"""Margin, funding and the simplified liquidation of the simulated account (part of ``MatchingEngine``).

The rules are documented in ``account.py``. Cross-margin terms (unrealized PnL and
maintenance margin per symbol) are kept current incrementally, so the liquidation check costs
O(1) per price update instead of O(symbols).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from core.types import ZERO, ExecutionType, MarginType, OrderStatus, OrderType, Side, TimeInForce
from exchanges.sim.errors import err
from exchanges.sim.records import EngineConfig, MarginCallEvent, SimOrder
from exchanges.sim.rules import to_tick

if TYPE_CHECKING:
    from exchanges.sim.account import Account
    from exchanges.sim.records import PositionState, SimEvent
    from exchanges.sim.rules import SymbolSpec


MARGIN_CALL_RATIO = Decimal("0.8")  # maintenance margin / margin balance that triggers MARGIN_CALL


class MarginRules:
    """Available balance, margin checks, funding settlement and liquidation."""

    if TYPE_CHECKING:  # provided by MatchingEngine
        account: Account
        config: EngineConfig
        specs: dict[str, SymbolSpec]
        _order_seq: int
        _cross_terms: dict[str, tuple[Decimal, Decimal]]
        _cross_upnl: Decimal
        _cross_maint: Decimal
        _margin_called: bool
        events: list[SimEvent]

        def position_state(self, symbol: str) -> PositionState: ...

        def open_orders(self, symbol: str | None = None) -> list[SimOrder]: ...
        def _mark(self, symbol: str) -> Decimal: ...
        def _increase_qty(self, symbol: str, side: Side, qty: Decimal) -> Decimal: ...
        def _add_order(self, order: SimOrder) -> None: ...
        def _finish(self, order: SimOrder, status: OrderStatus, execution: ExecutionType, now_ms: int,
                    reason: str = "0") -> None: ...
        def _execute(self, order: SimOrder, qty: Decimal, price: Decimal, *, maker: bool, now_ms: int,
                     execution: ExecutionType = ExecutionType.TRADE) -> None: ...
        def _account_event(self, reason: str, now_ms: int, change: Decimal, symbols: tuple[str, ...],
                           symbol: str = "") -> None: ...

    def available_balance(self) -> Decimal:
        """Cross wallet + cross unrealized losses − cross position and open-order margin."""
        acct = self.account
        upnl = ZERO
        used = ZERO
        for sym, pos in acct.positions.items():
            if not pos.qty or pos.margin_type is MarginType.ISOLATED:
                continue
            mark = self._mark(sym)
            upnl += pos.unrealized(mark)
            used += pos.initial_margin(mark)
        return acct.cross_wallet() + min(upnl, ZERO) - used - self.open_order_margin()

    def open_order_margin(self, symbol: str | None = None) -> Decimal:
        total = ZERO
        for o in self.open_orders(symbol):
            if o.reduce_only:
                continue
            lev = self.account.position(o.symbol).leverage
            total += self._increase_qty(o.symbol, o.side, o.remaining) * o.price / lev
        return total

    def _check_margin(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        inc = self._increase_qty(symbol, side, qty)
        if not inc:
            return
        lev = self.account.position(symbol).leverage
        needed = inc * price / lev + inc * price * self.config.taker_fee
        if needed > self.available_balance():
            raise err(-2019)

    def liquidation_price(self, symbol: str) -> Decimal:
        """Mark price at which the simplified liquidation rule (account.py) fires, 0 when flat.

        Solves ``margin + (p − entry) × qty = |qty| × p × maint_rate`` for p, where margin is the
        isolated wallet, or for cross the cross wallet plus the other cross positions' unrealized
        PnL minus their maintenance margin (their marks held constant).
        """
        pos = self.account.position(symbol)
        if not pos.qty:
            return ZERO
        rate = self.specs[symbol].maint_rate
        if pos.margin_type is MarginType.ISOLATED:
            margin = pos.isolated_wallet
        else:
            own_upnl, own_maint = self._cross_terms.get(symbol, (ZERO, ZERO))
            margin = (self.account.cross_wallet() + self._cross_upnl - own_upnl
                      - (self._cross_maint - own_maint))
        q = pos.qty
        denominator = q * (1 - rate) if q > 0 else q * (1 + rate)
        price = (pos.entry_price * q - margin) / denominator
        return to_tick(max(price, ZERO), self.specs[symbol].rules.tick_size, ROUND_HALF_UP)

    def apply_funding(self, symbol: str, rate: Decimal, now_ms: int, mark: Decimal | None = None) -> Decimal:
        """Settle funding at ``rate`` on ``mark`` (default: the current mark price); emits
        ACCOUNT_UPDATE FUNDING_FEE when a position paid or received."""
        mark = mark if mark is not None else self._mark(symbol)
        amount = self.account.apply_funding(symbol, mark, rate, now_ms)
        if amount:
            pos = self.account.position(symbol)
            symbols = (symbol,) if pos.margin_type is MarginType.ISOLATED else ()
            self._account_event("FUNDING_FEE", now_ms, amount, symbols, symbol=symbol)
        return amount

    def _update_cross_terms(self, symbol: str) -> None:
        pos = self.account.position(symbol)
        if pos.qty and pos.margin_type is MarginType.CROSSED:
            mark = self._mark(symbol)
            terms = (pos.unrealized(mark), abs(pos.qty) * mark * self.specs[symbol].maint_rate)
        else:
            terms = (ZERO, ZERO)
        old = self._cross_terms.get(symbol, (ZERO, ZERO))
        self._cross_terms[symbol] = terms
        self._cross_upnl += terms[0] - old[0]
        self._cross_maint += terms[1] - old[1]

    def _check_liquidation(self, symbol: str, now_ms: int) -> None:
        """Simplified liquidation (see account.py): isolated per position, cross for the account."""
        pos = self.account.position(symbol)
        if pos.qty and pos.margin_type is MarginType.ISOLATED:
            mark = self._mark(symbol)
            if pos.isolated_wallet + pos.unrealized(mark) <= abs(pos.qty) * mark * self.specs[symbol].maint_rate:
                self._liquidate(symbol, now_ms)
        self._update_cross_terms(symbol)
        equity = self.account.cross_wallet() + self._cross_upnl
        if self._cross_maint > 0 and equity <= self._cross_maint:
            for sym, (_u, maint) in list(self._cross_terms.items()):
                if maint > 0:
                    self._liquidate(sym, now_ms)
                    self._update_cross_terms(sym)
            self._margin_called = False
            return
        # MARGIN_CALL once when maintenance margin reaches MARGIN_CALL_RATIO of the cross
        # margin balance; re-armed when the ratio falls back below it.
        calling = self._cross_maint > 0 and self._cross_maint >= equity * MARGIN_CALL_RATIO
        if calling and not self._margin_called:
            states = tuple(self.position_state(s) for s, (_u, m) in self._cross_terms.items() if m > 0)
            self.events.append(MarginCallEvent(now_ms, self.account.cross_wallet(), states,
                                               tuple(self._cross_terms[p.symbol][1] for p in states)))
        self._margin_called = calling

    def _liquidate(self, symbol: str, now_ms: int) -> None:
        pos = self.account.position(symbol)
        side = Side.SELL if pos.qty > 0 else Side.BUY
        self._order_seq += 1
        order = SimOrder(
            order_id=self._order_seq, client_order_id=f"autoclose-{now_ms}", symbol=symbol, side=side,
            type=OrderType.LIMIT, orig_qty=abs(pos.qty), price=self._mark(symbol),
            time_in_force=TimeInForce.IOC, reduce_only=True, time_ms=now_ms, update_ms=now_ms,
            orig_type=OrderType.LIMIT,
        )
        self._add_order(order)
        for o in self.open_orders(symbol):
            if o is not order:
                self._finish(o, OrderStatus.CANCELED, ExecutionType.CANCELED, now_ms)
        self._execute(order, order.orig_qty, self._mark(symbol), maker=False, now_ms=now_ms,
                      execution=ExecutionType.CALCULATED)
