"""Reconciliation: make the croupier's brackets agree with what the exchange says, before trading.

Runs at start (after the local recovery of ``state/recovery.py``), on ``ReconcileNeeded`` from
the user stream, and periodically. In this order, because protection comes first:

1. settle journaled intents whose outcome is unknown, by client id (found → applied to its
   bracket; absent → the request never took effect);
2. read every live leg of every active bracket back from the exchange (fills and ends that
   the stream may have lost);
3. compare positions: a bracket whose position is gone or smaller was closed outside Casino
   (an outside exit fill at the mark price); a position no bracket knows is *adopted*
   (``adoption_policy``: ``protect`` places a stop and take-profit at ``adoption_sl_fraction``,
   ``flatten`` closes it);
4. drive every active bracket — a position without a stop gets one here, FIRST;
5. cancel orphans: Casino orders no live bracket owns, and reduce-only/closePosition orders
   on a symbol with no position (TP/SL whose position is gone); others' orders are reported.

Every difference is a ``Discrepancy`` in the report and counted in
``casino_reconcile_discrepancies_total{kind}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core import metrics
from core.errors import ExchangeError, UnknownOutcome
from core.ports import ExchangePort
from core.types import ZERO, AlgoOrder, Order, Position
from croupier import ids
from croupier.bracket import Bracket, BracketEvent, EventKind, LegStatus
from croupier.executor import OrderExecutor
from croupier.ids import Leg
from croupier.oco import OCOManager
from state.journal import IntentAction, Journal, OutcomeStatus

log = logging.getLogger(__name__)
K = EventKind
PER_SYMBOL_QUERY_LIMIT = 20
PRICE_QUANTUM = Decimal("1E-8")


@dataclass(frozen=True, slots=True)
class OutsideTrades:
    """The exchange's trades that closed (part of) a position outside Casino, as booked."""

    quantity: Decimal
    notional: Decimal  # Σ quantity × price
    last_time_ms: int  # the exchange's time of the latest of them

    @property
    def average_price(self) -> Decimal:
        return (self.notional / self.quantity).quantize(PRICE_QUANTUM)


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One difference between local state and the exchange, and what was done about it."""

    kind: str
    symbol: str
    detail: str
    action: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "symbol": self.symbol, "detail": self.detail, "action": self.action}


@dataclass(slots=True)
class ReconcileReport:
    reason: str
    discrepancies: list[Discrepancy] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, kind: str, symbol: str, detail: str, action: str = "") -> None:
        item = Discrepancy(kind, symbol, detail, action)
        self.discrepancies.append(item)
        metrics.RECONCILE_DISCREPANCIES.labels(kind=kind).inc()
        log.warning("reconcile (%s): %s %s: %s%s", self.reason, kind, symbol, detail,
                    f" → {action}" if action else "")

    def to_dict(self) -> dict[str, object]:
        return {"reason": self.reason, "discrepancies": [d.to_dict() for d in self.discrepancies],
                "errors": list(self.errors)}


class Reconciler:
    """Brings ``oco``'s brackets in line with ``exchange`` (see the module docstring)."""

    def __init__(self, exchange: ExchangePort, oco: OCOManager, executor: OrderExecutor, journal: Journal, *,
                 symbols: Sequence[str], tag: str, adoption_policy: str,
                 on_outside_exit: Callable[[Bracket, Decimal], Awaitable[OutsideTrades | None]] | None = None,
                 ) -> None:
        self.exchange = exchange
        self.oco = oco
        self.executor = executor
        self.journal = journal
        self.symbols = list(symbols)
        self.tag = tag
        self.adoption_policy = adoption_policy
        self.on_outside_exit = on_outside_exit

    async def run(self, reason: str) -> ReconcileReport:
        report = ReconcileReport(reason)
        try:
            await self._resolve_intents(report)
            await self._sync_legs(report)
            positions = {p.symbol: p for p in await self.exchange.positions() if not p.is_flat}
            await self._positions(positions, report)
            for bracket in self.oco.book.active():  # a position without a stop gets one FIRST
                await self.oco.drive(bracket.id)
            orders, algos = await self._open_orders()
            positions = {p.symbol: p for p in await self.exchange.positions() if not p.is_flat}
            await self._orphans(orders, algos, positions, report)
        except ExchangeError as exc:
            report.errors.append(f"{type(exc).__name__}: {exc}")
            log.error("reconcile (%s) interrupted: %s", reason, exc)
        return report

    async def _open_orders(self) -> tuple[list[Order], list[AlgoOrder]]:
        """Open orders on the session's symbols: per symbol (weight 1 each) while that is cheaper
        than one all-symbols call (weight 40), which also spares the account's weight budget."""
        if len(self.symbols) > PER_SYMBOL_QUERY_LIMIT:
            return await self.exchange.open_orders(), await self.exchange.open_algo_orders()
        orders: list[Order] = []
        algos: list[AlgoOrder] = []
        for symbol in self.symbols:
            orders += await self.exchange.open_orders(symbol)
            algos += await self.exchange.open_algo_orders(symbol)
        return orders, algos

    # -- 1. intents of unknown outcome --------------------------------------------------------

    async def _resolve_intents(self, report: ReconcileReport) -> None:
        for ticket in self.journal.pending():
            intent = ticket.intent
            if intent.action in (IntentAction.CANCEL_ORDER, IntentAction.CANCEL_ALGO):
                # the leg's state is read back below either way; a repeated cancel is harmless
                self.journal.record_outcome(ticket, OutcomeStatus.NOT_SENT, message="superseded by reconciliation")
                continue
            algo = intent.action is IntentAction.PLACE_ALGO
            try:
                found = await self.executor.resolve_pending(intent.client_id, algo=algo, symbol=intent.symbol)
            except UnknownOutcome as exc:
                report.add("unknown_intent", intent.symbol, f"{intent.client_id} still unresolved: {exc}")
                continue
            bracket = self.oco.book.find_by_client_id(intent.client_id)
            if found is None:
                report.add("unknown_intent", intent.symbol, f"{intent.client_id} never reached the exchange",
                           "marked not sent")
                if bracket is not None:
                    self._never_sent(bracket.id, intent.client_id)
                continue
            report.add("unknown_intent", intent.symbol, f"{intent.client_id} found on the exchange", "adopted")
            if bracket is not None:
                if isinstance(found, AlgoOrder):
                    self.oco.apply_algo_state(bracket.id, found, "")
                elif isinstance(found, Order):
                    self.oco.apply_order_state(bracket.id, found, None, None, "")

    def _never_sent(self, bid: str, client_id: str) -> None:
        b = self.oco.book.get(bid)
        leg = b.leg_by_client_id(client_id)
        if leg is None or not leg.status.is_live:
            return
        why = "never reached the exchange"
        if leg.leg is Leg.ENTRY:
            if b.entry_open and b.entry_filled_qty == 0:
                self.oco.apply(bid, BracketEvent(K.ENTRY_ENDED, self.oco.clock.now_ms(), client_id=client_id,
                                                 reason=why))
        elif leg.status is LegStatus.SENT:
            self.oco.apply(bid, BracketEvent(K.LEG_REJECTED, self.oco.clock.now_ms(), client_id=client_id,
                                             reason=why))

    # -- 2. live legs ------------------------------------------------------------------------------

    async def _sync_legs(self, report: ReconcileReport) -> None:
        for bracket in self.oco.book.active():
            records = list(bracket.live_legs())
            entry = bracket.entry_leg
            if entry is not None and bracket.entry_open and entry not in records:
                records.append(entry)
            for record in records:
                before = self.oco.book.get(bracket.id)
                known = await self.oco.sync_leg(bracket.id, record)
                if not known:
                    self._never_sent(bracket.id, record.client_id)
                after = self.oco.book.get(bracket.id)
                if after.version != before.version:
                    report.add("leg_state", bracket.symbol, f"{record.client_id}: {before.state.value} → "
                               f"{after.state.value} from the exchange's record", "applied")

    # -- 3. positions -------------------------------------------------------------------------------

    async def _positions(self, positions: dict[str, Position], report: ReconcileReport) -> None:
        active = self.oco.book.active()
        symbols = set(positions) | {b.symbol for b in active}
        for symbol in sorted(symbols):
            exchange_qty = positions[symbol].quantity if symbol in positions else ZERO
            mine = [b for b in active if b.symbol == symbol and b.open_qty > 0]
            ours = sum((b.side.sign * b.open_qty for b in mine), ZERO)
            if exchange_qty == ours:
                continue
            if not mine:
                if exchange_qty == 0:
                    continue
                await self._adopt(positions[symbol], report)
                continue
            bracket = mine[0]
            same_side = exchange_qty != 0 and (exchange_qty > 0) == (ours > 0)
            if abs(exchange_qty) < abs(ours) and (same_side or exchange_qty == 0):
                gone = abs(ours) - abs(exchange_qty)
                # the tracker books the real trades (userTrades); when they account for all of
                # it, the exit is booked at their price and time, else at the mark, now
                trades = await self.on_outside_exit(bracket, gone) if self.on_outside_exit is not None else None
                if trades is not None and trades.quantity == gone:
                    price, traded_ms = trades.average_price, trades.last_time_ms
                else:
                    price, traded_ms = await self._mark(symbol, positions.get(symbol)), None
                report.add("position_gone" if exchange_qty == 0 else "position_reduced", symbol,
                           f"bracket {bracket.id} holds {abs(ours)}, the exchange {exchange_qty}",
                           f"outside exit of {gone} at {price} booked")
                self.oco.apply(bracket.id, BracketEvent(K.EXIT_FILL, self.oco.clock.now_ms(), quantity=gone,
                                                        price=price, reason="closed outside Casino",
                                                        fill_time_ms=traded_ms))
            else:
                report.add("position_mismatch", symbol,
                           f"brackets hold {ours}, the exchange {exchange_qty}", "left for the operator")

    async def _adopt(self, position: Position, report: ReconcileReport) -> None:
        symbol = position.symbol
        if symbol not in self.oco.rules:
            report.add("foreign_position", symbol, f"{position.quantity} on a symbol outside the session",
                       "left alone")
            return
        bid = self.oco.adopt(symbol, position.quantity, position.entry_price or await self._mark(symbol, position))
        if self.adoption_policy == "flatten":
            report.add("unknown_position", symbol, f"{position.quantity} @ {position.entry_price}",
                       f"adopted as {bid} and flattened")
            await self.oco.flatten(bid, "adopted position: adoption_policy = flatten")
        else:
            report.add("unknown_position", symbol, f"{position.quantity} @ {position.entry_price}",
                       f"adopted as {bid} and protected")

    async def _mark(self, symbol: str, position: Position | None) -> Decimal:
        if position is not None and position.mark_price > 0:
            return position.mark_price
        return (await self.exchange.mark_price(symbol)).mark_price

    # -- 5. orphans ------------------------------------------------------------------------------------

    async def _orphans(self, orders: list[Order], algos: list[AlgoOrder], positions: dict[str, Position],
                       report: ReconcileReport) -> None:
        owned = {r.client_id for b in self.oco.book.active() for r in b.legs if r.status.is_live}
        owned |= {b.entry_leg.client_id for b in self.oco.book.active() if b.entry_leg and b.entry_open}
        # regular orders first, then algo orders: (client id, symbol, type, protective, how to cancel)
        candidates = [(o.client_order_id, o.symbol, o.type, o.reduce_only or o.close_position, self.executor.cancel_order)
                      for o in orders]
        candidates += [(a.client_algo_id, a.symbol, a.type, a.reduce_only or a.close_position, self.executor.cancel_algo)
                       for a in algos]
        for client_id, symbol, kind, protective, cancel in candidates:
            if client_id in owned:
                continue
            ours = ids.is_casino_id(client_id, self.tag)
            if ours or (protective and symbol not in positions and symbol in self.symbols):
                try:
                    await cancel(symbol, client_id)
                    report.add("orphan_order", symbol, f"{client_id} ({kind.value})", "cancelled")
                except ExchangeError as exc:
                    report.errors.append(f"cancel {client_id}: {exc}")
            else:
                report.add("foreign_order", symbol, client_id, "left alone")
