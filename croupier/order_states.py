"""How order states reach a bracket: REST replies, user-stream updates and queries alike.

``OrderStates`` is the half of ``OCOManager`` that turns an exchange record (``Order`` or
``AlgoOrder``) into bracket events. Quantities are *cumulative* (executedQty / ``z``), so the
same fill reported by the REST reply, the stream and a later query is applied exactly once:
only the part above what the leg already holds becomes a fill event. Its price is the trade's
own price when the record is exactly that trade, else it is derived from the cumulative
average. The triggered child of an algo order carries the algo's client id, so its fills are
the leg's fills. Each fill event also carries the exchange's time of the trade (the stream
fill's ``T``, else the record's ``updateTime``), so a trade learned late — a query during
reconciliation after a restart — still reports when it really happened.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.errors import Rejected
from core.types import ZERO, AlgoOrder, AlgoStatus, Order, OrderStatus, OrderType, Side
from croupier.bracket import BracketEvent, BracketState, EventKind, LegRecord, LegStatus
from croupier.ids import Leg

if TYPE_CHECKING:
    from croupier.bracket import Bracket
    from croupier.bracket_book import BracketBook
    from croupier.bracket_meta import BracketMeta
    from croupier.executor import OrderExecutor

K = EventKind
S = BracketState
PRICE_QUANTUM = Decimal("1E-8")


class OrderStates:
    """Order/algo records → bracket events (mixed into ``OCOManager``)."""

    if TYPE_CHECKING:  # provided by OCOManager
        book: BracketBook
        executor: OrderExecutor
        algo_children: dict[int, str]

        def meta_of(self, bracket: Bracket) -> BracketMeta: ...
        def apply(self, bracket_id: str, event: BracketEvent) -> Bracket | None: ...
        def _event(self, kind: EventKind, **kw: Any) -> BracketEvent: ...
        async def drive(self, bracket_id: str) -> None: ...

    async def apply_order(self, order: Order, *, fill_price: Decimal | None = None, fill_qty: Decimal | None = None,
                          fill_time_ms: int | None = None, reason: str = "") -> None:
        """A regular order's state (REST reply, stream, query): acks, fill deltas, its end; then drive.

        ``fill_price``/``fill_qty``/``fill_time_ms`` describe the trade that came with the record
        (an ORDER_TRADE_UPDATE), when there was one.
        """
        bracket = self.book.find_by_client_id(order.client_order_id)
        if bracket is None:
            return
        self.apply_order_state(bracket.id, order, fill_price, fill_qty, reason, fill_time_ms)
        await self.drive(bracket.id)

    def apply_order_state(self, bid: str, order: Order, fill_price: Decimal | None, fill_qty: Decimal | None,
                           reason: str, fill_time_ms: int | None = None) -> None:
        # the trade's own time, else the order's last update (a filled order's updateTime is its last fill)
        when = fill_time_ms or order.update_time_ms or None
        b = self.book.get(bid)
        leg = b.leg_by_client_id(order.client_order_id)
        if leg is None:
            return
        cid = leg.client_id
        if leg.leg is Leg.ENTRY:
            if order.order_id and leg.exchange_id is None and b.state is not S.CANCELLED:
                self.apply(bid, self._event(K.ENTRY_ACKED, client_id=cid, exchange_id=order.order_id))
            b = self.book.get(bid)
            delta = order.executed_qty - b.entry_filled_qty
            if delta > 0 and b.entry_open:
                price = _delta_price(order, delta, b.entry_notional, b.entry_filled_qty, fill_price, fill_qty)
                if price is not None:
                    kind = K.ENTRY_FILLED if order.executed_qty == b.requested_qty else K.ENTRY_PARTIAL_FILL
                    self.apply(bid, self._event(kind, client_id=cid, quantity=delta, price=price,
                                                fill_time_ms=when))
            b = self.book.get(bid)
            if order.status.is_final and b.entry_open and order.executed_qty <= b.entry_filled_qty:
                why = reason or f"entry {order.status.value.lower()}"
                self.apply(bid, self._event(K.ENTRY_ENDED, client_id=cid, reason=why))
            return
        if leg.algo:
            # The triggered child of an algo order carries the algo's client id: its fills are
            # the leg's fills; its end is reported by the ALGO_UPDATE that follows.
            if order.executed_qty > leg.filled_qty:
                self._exit_fill(bid, leg, order.executed_qty, order.avg_price, order.status is OrderStatus.FILLED,
                                fill_price, fill_qty, when)
            return
        if order.order_id and leg.status is LegStatus.SENT and leg.leg is Leg.TAKE_PROFIT and order.status.is_open:
            self.apply(bid, self._event(K.TP_ACKED, client_id=cid, exchange_id=order.order_id))
        if order.executed_qty > leg.filled_qty:
            self._exit_fill(bid, leg, order.executed_qty, order.avg_price, order.status.is_final,
                            fill_price, fill_qty, when)
        leg = self.book.get(bid).leg_by_client_id(cid)
        if leg is not None and leg.status.is_live and order.status.is_final:
            self.apply(bid, self._event(K.LEG_CANCELLED, client_id=cid,
                                        reason=reason or f"order {order.status.value.lower()}"))

    def _exit_fill(self, bid: str, leg: LegRecord, cumulative: Decimal, avg: Decimal, final: bool,
                   fill_price: Decimal | None, fill_qty: Decimal | None, fill_time_ms: int | None) -> None:
        meta = self.meta_of(self.book.get(bid))
        delta = cumulative - leg.filled_qty
        known = meta.leg_notional.get(leg.client_id, ZERO)
        fake = Order("", 0, "", Side.BUY, OrderType.MARKET, OrderStatus.NEW, cumulative, ZERO,
                     executed_qty=cumulative, avg_price=avg)
        price = _delta_price(fake, delta, known, leg.filled_qty, fill_price, fill_qty)
        if price is None:
            return
        if self.apply(bid, self._event(K.EXIT_FILL, client_id=leg.client_id, quantity=delta, price=price,
                                       final=final, fill_time_ms=fill_time_ms)) is not None:
            meta.leg_notional[leg.client_id] = known + delta * price

    async def apply_algo(self, algo: AlgoOrder, *, reason: str = "") -> None:
        """An algo order's state (REST reply, ALGO_UPDATE, query); then drive."""
        bracket = self.book.find_by_client_id(algo.client_algo_id)
        if bracket is None:
            return
        self.apply_algo_state(bracket.id, algo, reason)
        await self.drive(bracket.id)

    def apply_algo_state(self, bid: str, algo: AlgoOrder, reason: str) -> None:
        b = self.book.get(bid)
        leg = b.leg_by_client_id(algo.client_algo_id)
        if leg is None or not leg.status.is_live:
            return
        cid = leg.client_id
        if leg.status is LegStatus.SENT and algo.status is not AlgoStatus.REJECTED:
            kind = K.SL_ACKED if leg.leg is Leg.STOP_LOSS else K.TP_ACKED
            self.apply(bid, self._event(kind, client_id=cid, exchange_id=algo.algo_id))
        if algo.status.is_open:
            return
        if algo.executed_qty > leg.filled_qty and algo.avg_price > 0:
            # the algo record's updateTime is when it finished, i.e. when its child order filled
            self._exit_fill(bid, leg, algo.executed_qty, algo.avg_price, True, None, None,
                            algo.update_time_ms or None)
        b = self.book.get(bid)
        leg = b.leg_by_client_id(cid)
        if leg is None or not leg.status.is_live:
            return
        why = reason or f"algo {algo.status.value.lower()}{': ' + algo.reason if algo.reason else ''}"
        if leg.status is LegStatus.SENT:
            self.apply(bid, self._event(K.LEG_REJECTED, client_id=cid, reason=why))
        elif leg.leg is Leg.STOP_LOSS and b.open_qty > 0 and b.state in (S.PROTECTED, S.PROTECTING, S.RESIZING,
                                                                         S.EXITING, S.FLATTENING):
            others = [r for r in b.live_legs(Leg.STOP_LOSS) if r.client_id != cid]
            kind = K.LEG_CANCELLED if others else K.SL_LOST
            self.apply(bid, self._event(kind, client_id=cid, reason=why))
        else:
            self.apply(bid, self._event(K.LEG_CANCELLED, client_id=cid, reason=why))

    async def sync_leg(self, bid: str, record: LegRecord) -> bool:
        """Read one leg's order back from the exchange and apply it; False when it is unknown there."""
        b = self.book.get(bid)
        try:
            if record.algo:
                algo = await self.executor.exchange.query_algo_order(b.symbol, client_algo_id=record.client_id)
                self.apply_algo_state(bid, algo, "")
                if algo.actual_order_id:
                    child = await self.executor.exchange.query_order(b.symbol, order_id=algo.actual_order_id)
                    self.algo_children[child.order_id] = record.client_id
                    self.apply_order_state(bid, child, None, None, "")
                    self.apply_algo_state(bid, algo, "")
            else:
                order = await self.executor.exchange.query_order(b.symbol, client_order_id=record.client_id)
                self.apply_order_state(bid, order, None, None, "")
        except Rejected as exc:
            if exc.code in (-2011, -2013):
                return False
            raise
        return True


def _delta_price(order: Order, delta: Decimal, known_notional: Decimal, known_qty: Decimal,
                 fill_price: Decimal | None, fill_qty: Decimal | None) -> Decimal | None:
    """Price of the newly filled ``delta``: the fill's own price when it is exactly that fill,
    else derived from the order's cumulative average (None when the venue gave no average)."""
    if fill_price is not None and fill_qty == delta:
        return fill_price
    if order.avg_price <= 0:
        return None
    total = order.executed_qty * order.avg_price
    price = (total - known_notional) / delta if known_qty else order.avg_price
    if price <= 0:
        price = order.avg_price
    return price.quantize(PRICE_QUANTUM)

