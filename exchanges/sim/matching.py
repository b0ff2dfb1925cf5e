"""The simulated matching engine: pure and deterministic for a given price path and orders.

It never reads a clock: every call takes the simulated time ``now_ms``. Prices arrive via
``set_price`` (the feed's intra-bar path); each call may trigger algo orders, fill resting
limits and liquidate, and every state change is appended to ``events`` (drain with
``drain()``), which the server renders as Binance JSON and ``local.py`` as kernel events.

Fill model (see also ``feed.py``):

* There is no order book: the last price is both bid and ask (``bookTicker`` shows that), and
  ``slippage_bps`` models the spread and impact of taking.
* MARKET (and marketable LIMIT) orders fill at once as taker at last ± slippage (adverse,
  rounded to the tick away from the trader; a LIMIT never fills beyond its price).
* Resting LIMIT orders fill completely as maker at their own price when the path crosses
  them: strictly through the price when ``pessimistic`` (the default), touching it otherwise.
* A triggered STOP_MARKET/TAKE_PROFIT_MARKET fills at its trigger price when the path crossed
  the trigger within the step (continuous move), at the current price when the step started
  beyond it (a gap), in both cases with adverse slippage.
* ``split_fills`` (fault injection) splits every fill into that many step-aligned partial fills.

Rules enforced with Binance's codes: newClientOrderId charset/length -4015 and duplicates
among open orders -4116; precision -1111, tick -4014, step -4023, quantity ≤ 0 -4003,
MIN_NOTIONAL -4164 (not for reduceOnly), PERCENT_PRICE -4016/-4024 (LIMIT) and -4131
(MARKET); reduceOnly that would increase the position -2022; GTX that would take -5022; FOK
that cannot fill -5021; insufficient margin -2019; unknown orders -2011 (cancel) / -2013
(query); conditional types on the order endpoint -4120; triggers that would fire at once
-2021; hedge-mode orders -4061 (only one-way mode is simulated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TypeVar

from core.types import (
    ZERO,
    AlgoStatus,
    ExecutionType,
    MarginType,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
)
from exchanges.sim.account import Account
from exchanges.sim.conditional import ConditionalOrders
from exchanges.sim.errors import SimError, err
from exchanges.sim.margin import MarginRules
from exchanges.sim.records import (
    AccountEvent,
    ConfigEvent,
    EngineConfig,
    OrderEvent,
    PositionState,
    PriceState,
    SimAlgo,
    SimEvent,
    SimOrder,
    TradeInfo,
    TradeRecord,
)
from exchanges.sim.rules import SymbolSpec, decimals, to_tick

_T = TypeVar("_T")
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
BPS = Decimal("0.0001")
ORDER_RETENTION_MS = 3 * 86_400_000  # final orders without fills: 3 days (ALGO zh-CN page)
TRADE_RETENTION_MS = 90 * 86_400_000  # userTrades history: 3 months (CL 2026-08-26)


class MatchingEngine(ConditionalOrders, MarginRules):
    """Orders, algo orders, positions and the wallet of one simulated account."""

    def __init__(self, specs: Iterable[SymbolSpec], config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.specs: dict[str, SymbolSpec] = {s.symbol: s for s in specs}
        self.account = Account(self.config.balance, self.config.default_leverage)
        self.prices: dict[str, PriceState] = {}
        self.orders: dict[int, SimOrder] = {}
        self.algos: dict[int, SimAlgo] = {}
        self.trades: list[TradeRecord] = []
        self.events: list[SimEvent] = []
        self.split_fills = 1
        # Per-symbol indexes of orders that may still be open (pruned lazily by _live).
        self._open_orders: dict[str, dict[int, SimOrder]] = {}
        self._open_algos: dict[str, dict[int, SimAlgo]] = {}
        # Cross-margin terms per symbol (unrealized PnL, maintenance margin), kept current
        # so the liquidation check costs O(1) per price update instead of O(symbols).
        self._cross_terms: dict[str, tuple[Decimal, Decimal]] = {}
        self._cross_upnl = ZERO
        self._cross_maint = ZERO
        self._margin_called = False
        self._order_seq = 4_000_000_000
        self._algo_seq = 1_000_000_000_000_000
        self._trade_seq = 600_000_000
        self._auto_id = 0

    # ------------------------------------------------------------------ helpers

    def spec(self, symbol: str) -> SymbolSpec:
        try:
            return self.specs[symbol]
        except KeyError:
            raise err(-1121) from None

    def drain(self) -> list[SimEvent]:
        """Events emitted since the last drain, oldest first."""
        out, self.events = self.events, []
        return out

    def last_price(self, symbol: str) -> Decimal | None:
        p = self.prices.get(symbol)
        return p.last if p else None

    def mark_price(self, symbol: str) -> Decimal | None:
        p = self.prices.get(symbol)
        return p.mark if p else None

    def _next_client_id(self, prefix: str) -> str:
        self._auto_id += 1
        return f"{prefix}{self._auto_id:016d}"

    def open_orders(self, symbol: str | None = None) -> list[SimOrder]:
        return _live(self._open_orders, symbol)

    def open_algos(self, symbol: str | None = None) -> list[SimAlgo]:
        return _live(self._open_algos, symbol)

    def _add_order(self, order: SimOrder) -> None:
        self.orders[order.order_id] = order
        self._open_orders.setdefault(order.symbol, {})[order.order_id] = order

    def _add_algo(self, a: SimAlgo) -> None:
        self.algos[a.algo_id] = a
        self._open_algos.setdefault(a.symbol, {})[a.algo_id] = a

    # ------------------------------------------------------------------ validation

    def _check_client_id(self, client_id: str, *, algo: bool) -> None:
        if not CLIENT_ID_RE.match(client_id):
            raise err(-4015)
        if algo:
            dup = any(a.client_algo_id == client_id for a in self.open_algos())
        else:
            dup = any(o.client_order_id == client_id for o in self.open_orders())
        if dup:
            raise err(-4116)

    def _check_qty(self, spec: SymbolSpec, qty: Decimal) -> None:
        rules = spec.rules
        if qty <= 0:
            raise err(-4003)
        if decimals(qty.normalize()) > rules.quantity_precision:
            raise err(-1111)
        if qty % rules.step_size != 0:
            raise err(-4023)
        if qty < rules.min_qty or (rules.max_qty > 0 and qty > rules.max_qty):
            raise err(-4023)

    def _check_price(self, spec: SymbolSpec, price: Decimal) -> None:
        rules = spec.rules
        if price <= 0:
            raise SimError(-4013, "Price less than min price.")
        if decimals(price.normalize()) > rules.price_precision:
            raise err(-1111)
        if price % rules.tick_size != 0:
            raise err(-4014)
        if rules.min_price > 0 and price < rules.min_price:
            raise SimError(-4013, "Price less than min price.")
        if rules.max_price > 0 and price > rules.max_price:
            raise SimError(-4016, f"Limit price can't be higher than {rules.max_price}.")

    def _check_mode(self, position_side: PositionSide) -> None:
        # Only one-way mode is simulated: in hedge mode (or with LONG/SHORT) Binance's
        # position-side error is the answer.
        if self.account.dual_side or position_side is not PositionSide.BOTH:
            raise err(-4061)

    def _increase_qty(self, symbol: str, side: Side, qty: Decimal) -> Decimal:
        """The part of a ``qty`` order on ``side`` that would add to exposure."""
        pos = self.account.position(symbol).qty
        if pos == 0 or (pos > 0) == (side is Side.BUY):
            return qty
        return max(ZERO, qty - abs(pos))

    def _mark(self, symbol: str) -> Decimal:
        p = self.prices.get(symbol)
        if p is None:
            return self.account.position(symbol).entry_price
        return p.mark

    # ------------------------------------------------------------------ regular orders

    def place_order(
        self, *, symbol: str, side: Side, order_type: OrderType, quantity: Decimal | None,
        now_ms: int, price: Decimal | None = None, time_in_force: TimeInForce | None = None,
        reduce_only: bool = False, client_order_id: str | None = None,
        position_side: PositionSide = PositionSide.BOTH, good_till_ms: int | None = None,
    ) -> SimOrder:
        """POST /fapi/v1/order for LIMIT/MARKET (conditional types answer -4120)."""
        spec = self.spec(symbol)
        if order_type.is_conditional:
            raise err(-4120)
        self._check_mode(position_side)
        if time_in_force is TimeInForce.GTD:
            # Binance: goodTillDate > now + 600 s, second precision; required for GTD.
            if good_till_ms is None:
                raise err(-1102, "goodTillDate")
            if good_till_ms <= now_ms + 600_000 or good_till_ms >= 253_402_300_799_000:
                raise err(-1130, "goodTillDate")
            good_till_ms -= good_till_ms % 1000
        else:
            good_till_ms = 0
        if len(self.open_orders(symbol)) >= spec.rules.max_num_orders:
            raise SimError(-2025, "Reach max open order limit.")
        if client_order_id is None:
            client_order_id = self._next_client_id("sim")
        self._check_client_id(client_order_id, algo=False)
        if quantity is None:
            raise err(-1102, "quantity")
        self._check_qty(spec, quantity)
        state = self.prices.get(symbol)
        if state is None:
            raise SimError(-1000, f"No price yet for {symbol}; advance the feed first.")
        last = state.last
        if order_type is OrderType.LIMIT:
            if price is None:
                raise err(-1102, "price")
            if time_in_force is None:
                raise err(-1102, "timeInForce")
            self._check_price(spec, price)
            rules = spec.rules
            if rules.multiplier_up is not None and rules.multiplier_down is not None:
                if side is Side.BUY and price > state.mark * rules.multiplier_up:
                    raise err(-4016, to_tick(state.mark * rules.multiplier_up, rules.tick_size, ROUND_FLOOR))
                if side is Side.SELL and price < state.mark * rules.multiplier_down:
                    raise err(-4024, to_tick(state.mark * rules.multiplier_down, rules.tick_size, ROUND_CEILING))
        else:
            if price is not None:
                raise SimError(-1106, "Parameter 'price' sent when not required.")
            time_in_force = TimeInForce.GTC
        ref_price = price if price is not None else last
        if not reduce_only and quantity * ref_price < spec.rules.min_notional:
            raise err(-4164, spec.rules.min_notional)
        if reduce_only and self._increase_qty(symbol, side, quantity) == quantity:
            raise err(-2022)
        marketable = order_type is OrderType.MARKET or (
            price is not None and (price >= last if side is Side.BUY else price <= last))
        if time_in_force is TimeInForce.GTX and marketable:
            raise err(-5022)
        if not reduce_only:
            self._check_margin(symbol, side, quantity, ref_price if order_type is OrderType.LIMIT else last)
        self._order_seq += 1
        order = SimOrder(
            order_id=self._order_seq, client_order_id=client_order_id, symbol=symbol, side=side,
            type=order_type, orig_qty=quantity, price=price if price is not None else ZERO,
            time_in_force=time_in_force, reduce_only=reduce_only, time_ms=now_ms, update_ms=now_ms,
            orig_type=order_type, position_side=position_side, good_till_ms=good_till_ms,
        )
        if time_in_force is TimeInForce.FOK and not marketable:
            raise err(-5021)
        self._add_order(order)
        self._emit_order(order, ExecutionType.NEW, now_ms)
        if marketable:
            self._take(order, now_ms, crossed_at=None)
        elif time_in_force is TimeInForce.IOC:
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, now_ms, reason="2")
        return order.snapshot()

    def _find_order(self, symbol: str, order_id: int | None, client_id: str | None) -> SimOrder | None:
        if order_id is not None:
            o = self.orders.get(order_id)
            return o if o is not None and o.symbol == symbol else None
        if client_id is not None:
            found = [o for o in self.orders.values() if o.symbol == symbol and o.client_order_id == client_id]
            open_ = [o for o in found if o.status.is_open]
            return (open_ or found or [None])[-1]
        raise SimError(-1102, "Mandatory parameter 'orderId' was not sent, was empty/null, or malformed.")

    def get_order(self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None) -> SimOrder:
        """GET /fapi/v1/order: -2013 when unknown (also for an untriggered algo order)."""
        self.spec(symbol)
        o = self._find_order(symbol, order_id, client_order_id)
        if o is None:
            raise err(-2013)
        return o.snapshot()

    def cancel_order(self, symbol: str, *, now_ms: int, order_id: int | None = None,
                     client_order_id: str | None = None) -> SimOrder:
        """DELETE /fapi/v1/order: -2011 when unknown or already final."""
        self.spec(symbol)
        o = self._find_order(symbol, order_id, client_order_id)
        if o is None or not o.status.is_open:
            raise err(-2011)
        self._finish(o, OrderStatus.CANCELED, ExecutionType.CANCELED, now_ms)
        return o.snapshot()

    def cancel_all(self, symbol: str, now_ms: int) -> int:
        self.spec(symbol)
        orders = self.open_orders(symbol)
        for o in orders:
            self._finish(o, OrderStatus.CANCELED, ExecutionType.CANCELED, now_ms)
        return len(orders)

    # ------------------------------------------------------------------ execution

    def _emit_order(self, order: SimOrder, execution: ExecutionType, now_ms: int,
                    trade: TradeInfo | None = None) -> None:
        self.events.append(OrderEvent(order.snapshot(), execution, now_ms, trade))

    def _finish(self, order: SimOrder, status: OrderStatus, execution: ExecutionType, now_ms: int,
                reason: str = "0") -> None:
        order.status = status
        order.update_ms = now_ms
        order.expiry_reason = reason
        self._emit_order(order, execution, now_ms)
        self._settle_algo_child(order, now_ms)

    def _slipped(self, spec: SymbolSpec, side: Side, base: Decimal) -> Decimal:
        slip = self.config.slippage_bps * BPS
        if side is Side.BUY:
            return to_tick(base * (1 + slip), spec.rules.tick_size, ROUND_CEILING)
        return to_tick(base * (1 - slip), spec.rules.tick_size, ROUND_FLOOR)

    def _take(self, order: SimOrder, now_ms: int, crossed_at: Decimal | None) -> None:
        """Fill ``order`` now as taker."""
        spec = self.spec(order.symbol)
        base = crossed_at if crossed_at is not None else self.prices[order.symbol].last
        price = self._slipped(spec, order.side, base)
        if order.type is OrderType.LIMIT:
            price = min(price, order.price) if order.side is Side.BUY else max(price, order.price)
        self._execute(order, order.remaining, price, maker=False, now_ms=now_ms)

    def _execute(self, order: SimOrder, qty: Decimal, price: Decimal, *, maker: bool, now_ms: int,
                 execution: ExecutionType = ExecutionType.TRADE) -> None:
        acct = self.account
        spec = self.spec(order.symbol)
        if order.reduce_only or order.close_position:
            pos = acct.position(order.symbol).qty
            reducible = abs(pos) if pos and (pos > 0) != (order.side is Side.BUY) else ZERO
            qty = min(qty, reducible)
            if not qty:
                # Nothing left to reduce: Binance expires the order (er 4 = knocked out).
                self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, now_ms, reason="4")
                return
        parts = self._split(spec, qty)
        fee_rate = self.config.maker_fee if maker else self.config.taker_fee
        wallet_before = acct.wallet
        for part in parts:
            self._trade_seq += 1
            signed = part if order.side is Side.BUY else -part
            outcome = acct.apply_fill(order.symbol, signed, price, fee_rate, now_ms, self._trade_seq)
            order.executed_qty += part
            order.cum_quote += part * price
            order.update_ms = now_ms
            order.last_trade_ms = now_ms
            full = order.executed_qty >= order.orig_qty
            order.status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
            info = TradeInfo(self._trade_seq, price, part, outcome.commission, outcome.realized_pnl, maker)
            self.trades.append(TradeRecord(order.symbol, order.order_id, order.side, info, now_ms))
            self._emit_order(order, execution, now_ms, info)
        if order.status is not OrderStatus.FILLED and (
            order.type is OrderType.MARKET or order.reduce_only or order.close_position
            or order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        ):
            # What a capped reduce-only/close order or a MARKET could not fill expires.
            self._finish(order, OrderStatus.EXPIRED, ExecutionType.EXPIRED, now_ms,
                         reason="9" if order.type is OrderType.MARKET else "4")
        self._account_event("ORDER", now_ms, acct.wallet - wallet_before, (order.symbol,))
        if order.status is OrderStatus.FILLED:
            self._settle_algo_child(order, now_ms)
        self._after_position_change(order.symbol, now_ms)

    def _split(self, spec: SymbolSpec, qty: Decimal) -> list[Decimal]:
        n = max(1, self.split_fills)
        step = spec.rules.step_size
        steps = int(qty / step)
        if n == 1 or steps < 2:
            return [qty]
        n = min(n, steps)
        base = steps // n
        parts = [base * step] * (n - 1)
        parts.append(qty - sum(parts, ZERO))
        return parts

    def _after_position_change(self, symbol: str, now_ms: int) -> None:
        """A flat position expires closePosition algos and resting reduce-only orders."""
        self._update_cross_terms(symbol)
        if self.account.position(symbol).qty:
            return
        for a in self.open_algos(symbol):
            if a.status is AlgoStatus.NEW and a.close_position:
                self._algo_final(a, AlgoStatus.EXPIRED, now_ms, "Position is closed")
        for o in self.open_orders(symbol):
            if o.reduce_only or o.close_position:
                self._finish(o, OrderStatus.EXPIRED, ExecutionType.EXPIRED, now_ms, reason="4")

    def position_state(self, symbol: str) -> PositionState:
        pos = self.account.position(symbol)
        mark = self._mark(symbol)
        return PositionState(
            symbol, pos.qty, pos.entry_price, pos.break_even(), pos.cum_realized, pos.unrealized(mark),
            pos.margin_type, pos.isolated_wallet, mark, pos.leverage, pos.update_time_ms,
            self.liquidation_price(symbol),
        )

    def _account_event(self, reason: str, now_ms: int, change: Decimal, symbols: tuple[str, ...],
                       symbol: str = "") -> None:
        acct = self.account
        self.events.append(AccountEvent(
            reason, now_ms, acct.wallet, acct.cross_wallet(), change,
            tuple(self.position_state(s) for s in symbols), symbol,
        ))

    # ------------------------------------------------------------------ prices

    def set_price(self, symbol: str, last: Decimal, now_ms: int, mark: Decimal | None = None) -> None:
        """A new point of the price path: triggers, resting fills, liquidation."""
        self.spec(symbol)
        prev = self.prices.get(symbol)
        state = PriceState(last, mark if mark is not None else last, now_ms)
        self.prices[symbol] = state
        prev_last = prev.last if prev else last
        self._run_triggers(symbol, state, prev_last, now_ms)
        self._fill_resting(symbol, state, now_ms)
        self._check_liquidation(symbol, now_ms)

    def _fill_resting(self, symbol: str, state: PriceState, now_ms: int) -> None:
        strict = self.config.pessimistic
        for o in sorted(self.open_orders(symbol), key=lambda x: x.order_id):
            if o.type is not OrderType.LIMIT or not o.status.is_open:
                continue
            if o.good_till_ms and now_ms >= o.good_till_ms:
                # GTD reached: Binance expires the order (er 6, "GTE condition").
                self._finish(o, OrderStatus.EXPIRED, ExecutionType.EXPIRED, o.good_till_ms, reason="6")
                continue
            if o.side is Side.BUY:
                hit = state.last < o.price if strict else state.last <= o.price
            else:
                hit = state.last > o.price if strict else state.last >= o.price
            if hit:
                self._execute(o, o.remaining, o.price, maker=True, now_ms=now_ms)

    # ------------------------------------------------------------------ history retention

    def prune(self, now_ms: int) -> None:
        """Forget history Binance itself forgets, so long sessions stay bounded in memory.

        Binance no longer returns CANCELED/EXPIRED orders and algo orders without fills
        after 3 days, and keeps trade history for 3 months; the ledger follows the trades.
        """
        stale = now_ms - ORDER_RETENTION_MS
        for oid in [k for k, o in self.orders.items()
                    if o.status.is_final and not o.executed_qty and o.update_ms < stale]:
            del self.orders[oid]
        for aid in [k for k, a in self.algos.items()
                    if a.status.is_final and not a.executed_qty and a.update_ms < stale]:
            del self.algos[aid]
        old = now_ms - TRADE_RETENTION_MS
        if self.trades and self.trades[0].time_ms < old:
            self.trades = [t for t in self.trades if t.time_ms >= old]
            kept = {t.order_id for t in self.trades}
            for oid in [k for k, o in self.orders.items() if o.status.is_final and o.order_id not in kept
                        and o.update_ms < old]:
                del self.orders[oid]
        self.account.forget_before(old)

    # ------------------------------------------------------------------ account settings

    def set_leverage(self, symbol: str, leverage: int, now_ms: int) -> int:
        spec = self.spec(symbol)
        if not 1 <= leverage <= spec.max_leverage:
            raise err(-4028, leverage)
        pos = self.account.position(symbol)
        pos.leverage = leverage
        self.events.append(ConfigEvent(symbol, leverage, now_ms))
        return leverage

    def set_margin_type(self, symbol: str, margin_type: MarginType, now_ms: int) -> None:
        self.spec(symbol)
        pos = self.account.position(symbol)
        if pos.margin_type is margin_type:
            raise err(-4046)
        if pos.qty or self.open_orders(symbol):
            raise SimError(-4048, "Margin type cannot be changed if there exists position.")
        self.account.set_margin_type(symbol, margin_type)

    def set_dual_side(self, dual: bool) -> None:
        if self.account.dual_side == dual:
            raise err(-4059)
        if self.open_orders() or self.open_algos():
            raise err(-4067)
        if any(p.qty for p in self.account.positions.values()):
            raise err(-4068)
        self.account.dual_side = dual



def _live(index: dict[str, dict[int, _T]], symbol: str | None) -> list[_T]:
    """Open entries of a per-symbol index, oldest first, dropping the ones now final."""
    buckets = [index.get(symbol, {})] if symbol is not None else list(index.values())
    out: list[_T] = []
    for bucket in buckets:
        done = [k for k, v in bucket.items() if not v.status.is_open]  # type: ignore[attr-defined]
        for k in done:
            del bucket[k]
        out.extend(bucket.values())
    if symbol is None:
        out.sort(key=lambda v: v.time_ms if isinstance(v, SimOrder) else v.create_ms)  # type: ignore[attr-defined]
    return out
