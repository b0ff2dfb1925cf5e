"""OCOManager: places a bracket's entry, protects it on the first fill, and winds it down.

Everything that changes a bracket goes through ``BracketBook.apply`` (journaled first); this
module decides *which* event or order comes next. The decision is a loop (``drive``) that
looks at the bracket and does the one next thing until nothing is left to do:

* a position and no live stop → place the stop-loss (algo STOP_MARKET on MARK_PRICE,
  closePosition or reduce-only sized to the filled quantity) and, concurrently but created
  first so it leads in the protective lane, the take-profit (algo TAKE_PROFIT_MARKET or a
  reduce-only LIMIT); after ``protect_attempts`` failed stops, or a definitive refusal that a
  retry cannot cure (-2021 the price is already beyond the stop, margin errors), flatten with a
  reduce-only MARKET order and finish FAILED with the reason;
* a further fill leaves the live protection smaller than the position → place the bigger
  stop *first*, then cancel the old one (no gap: two stops coexist for a moment);
* the position is flat → cancel the remaining legs (the sibling) and close the bracket.

Order states reach a bracket from three places — the REST reply, the user stream (which may
come first), and queries during reconciliation — and all of them go through ``apply_order`` /
``apply_algo`` (``croupier/order_states.py``), which turn *cumulative* executed quantities into
fill events, so a fill reported twice is applied once. ``drive`` for one bracket never runs twice at once; an event arriving
while it runs is picked up by its next iteration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from config.settings import CroupierSettings
from core.errors import ExchangeError, Rejected, UnknownOutcome
from core.events import Decision
from core.ports import Clock
from core.types import (
    AlgoOrderRequest,
    OrderRequest,
    OrderType,
    Rounding,
    Side,
    SymbolRules,
    TimeInForce,
    WorkingType,
)
from croupier.bracket import (
    Bracket,
    BracketEvent,
    BracketState,
    EventKind,
    IllegalTransition,
    LegRecord,
    LegStatus,
)
from croupier.bracket_book import BracketBook
from croupier.bracket_meta import BracketMeta
from croupier.executor import OrderExecutor
from croupier.ids import Leg
from croupier.order_states import OrderStates

log = logging.getLogger(__name__)

K = EventKind
S = BracketState
# Refusals a retry of the same stop cannot cure: protect by flattening at once.
FLATTEN_NOW_CODES = frozenset({-2021, -2018, -2019, -2027, -4164})
MAX_DRIVE_STEPS = 25


class OCOManager(OrderStates):
    """Entry, protection, resizing, exits and flattening of every bracket in ``book``."""

    def __init__(
        self, book: BracketBook, executor: OrderExecutor, clock: Clock, settings: CroupierSettings, *,
        tag: str, rules: dict[str, SymbolRules], on_terminal: Callable[[Bracket], None] | None = None,
    ) -> None:
        self.book = book
        self.executor = executor
        self.clock = clock
        self.settings = settings
        self.tag = tag
        self.rules = rules
        self.meta: dict[str, BracketMeta] = {}
        self.next_number = 1
        self.on_terminal = on_terminal
        self.on_opened: Callable[[Bracket], None] | None = None
        self._driving: set[str] = set()
        self._rerun: set[str] = set()
        self._reported: set[str] = set()
        self.reconcile_requested = False  # an outcome stayed unknown: reconcile soon, not at the next period
        # triggered child order id → client id of its algo leg, learned when a query reads the
        # child: userTrades name only the child's orderId (no clientOrderId on Binance)
        self.algo_children: dict[int, str] = {}

    # -- helpers ---------------------------------------------------------------------------

    def meta_of(self, bracket: Bracket) -> BracketMeta:
        meta = self.meta.get(bracket.id)
        if meta is None:  # a bracket whose meta was lost (journal newer than every snapshot)
            frac = self.settings.adoption_sl_fraction
            meta = self.meta[bracket.id] = BracketMeta(tp_fraction=2 * frac, sl_fraction=frac, adopted=True)
        return meta

    def apply(self, bracket_id: str, event: BracketEvent) -> Bracket | None:
        """Apply ``event``; an illegal one is logged (by the book) and ignored: the record stays valid."""
        try:
            before = self.book.get(bracket_id)
            after = self.book.apply(bracket_id, event)
        except IllegalTransition:
            return None
        if after.state.is_terminal and not before.state.is_terminal:
            self._finished(after)
        return after

    def _finished(self, bracket: Bracket) -> None:
        if bracket.id in self._reported:
            return
        self._reported.add(bracket.id)
        if self.on_terminal is not None:
            self.on_terminal(bracket)

    def active_on(self, symbol: str) -> Bracket | None:
        return self.book.active_on(symbol)

    def _event(self, kind: EventKind, **kw: Any) -> BracketEvent:
        return BracketEvent(kind, self.clock.now_ms(), **kw)

    # -- entry -------------------------------------------------------------------------------

    async def open(self, decision: Decision, quantity: Decimal) -> str | None:
        """Create a bracket and send its entry; None (reason logged) when refused."""
        begun = self.begin(decision, quantity)
        if begun is None:
            return None
        return await self.send_entry(*begun)

    def begin(self, decision: Decision, quantity: Decimal, *, durable: bool = True) -> tuple[str, OrderRequest] | None:
        """The synchronous half of ``open``: checks, the bracket registered (the symbol is taken
        from here on) and its entry journaled as submitted; returns (bracket id, entry request)
        for ``send_entry``, or None (reason logged) when refused.

        ``durable=False`` skips the snapshot that makes the bracket's meta durable: the caller
        then takes one snapshot for several brackets before sending any of their entries.
        """
        symbol = decision.symbol
        rules = self.rules.get(symbol)
        if rules is None:
            log.error("open %s refused: no symbol rules (not one of the session's symbols)", symbol)
            return None
        if self.active_on(symbol) is not None:
            log.warning("open %s refused: a bracket is already active on it", symbol)
            return None
        market = self.settings.entry_type == "MARKET"
        qty = rules.round_qty(quantity, market=market)
        price = None if market else rules.round_price(decision.reference_price, Rounding.passive(decision.side))
        problems = rules.check(quantity=qty, price=price, reference_price=decision.reference_price,
                               market=market, side=decision.side)
        if problems:
            log.warning("open %s refused by the symbol filters: %s", symbol, "; ".join(p.message for p in problems))
            return None
        now = self.clock.now_ms()
        bracket = Bracket(self.tag, symbol, decision.side, self.next_number, qty, created_ms=now)
        self.next_number += 1
        deadline = None if market else now + int(self.settings.entry_timeout_s * 1000)
        self.meta[bracket.id] = BracketMeta(
            decision.tp_fraction, decision.sl_fraction, decision.confidence,
            tuple((v.sensor, v.weight) for v in decision.votes), deadline,
        )
        self.book.open(bracket)
        if durable and self.on_opened is not None:
            self.on_opened(bracket)  # the meta is made durable before anything leaves
        cid = bracket.next_client_id(Leg.ENTRY)
        if self.apply(bracket.id, self._event(K.ENTRY_SUBMITTED, client_id=cid, quantity=qty, price=price)) is None:
            self.apply(bracket.id, self._event(K.FAIL, reason="entry could not be recorded"))  # release the symbol
            return None
        if market:
            request = OrderRequest(symbol, decision.side, OrderType.MARKET, qty, cid)
        else:
            tif = TimeInForce(self.settings.entry_time_in_force)
            request = OrderRequest(symbol, decision.side, OrderType.LIMIT, qty, cid, price=price, time_in_force=tif)
        return bracket.id, request

    async def send_entry(self, bracket_id: str, request: OrderRequest) -> str | None:
        """The asynchronous half of ``open``: send the begun bracket's entry and apply the answer."""
        bracket = self.book.get(bracket_id)
        cid = request.client_order_id
        try:
            order = await self.executor.place_order(request, bracket_id=bracket.id, leg=Leg.ENTRY.name)
        except UnknownOutcome as exc:
            log.error("bracket %s: entry outcome unknown (%s); reconciliation will resolve %s",
                      bracket.id, exc, cid)
            self.reconcile_requested = True
            return bracket.id
        except ExchangeError as exc:
            log.warning("bracket %s: entry refused: %s", bracket.id, exc)
            self.apply(bracket.id, self._event(K.ENTRY_ENDED, client_id=cid, reason=_reason(exc)))
            return None
        await self.apply_order(order)
        return bracket.id

    def adopt(self, symbol: str, quantity: Decimal, entry_price: Decimal) -> str:
        """A bracket for a position Casino did not open (found by reconciliation); returns its id.

        Its entry is recorded as already filled at the exchange's entry price (nothing is sent);
        ``drive`` then protects it at ``adoption_sl_fraction`` like any other bracket.
        """
        side = Side.BUY if quantity > 0 else Side.SELL
        qty = abs(quantity)
        bracket = Bracket(self.tag, symbol, side, self.next_number, qty, created_ms=self.clock.now_ms())
        self.next_number += 1
        frac = self.settings.adoption_sl_fraction
        self.meta[bracket.id] = BracketMeta(tp_fraction=2 * frac, sl_fraction=frac, adopted=True)
        self.book.open(bracket)
        if self.on_opened is not None:
            self.on_opened(bracket)
        cid = bracket.next_client_id(Leg.ENTRY)
        self.apply(bracket.id, self._event(K.ENTRY_SUBMITTED, client_id=cid, quantity=qty, reason="adopted"))
        self.apply(bracket.id, self._event(K.ENTRY_FILLED, client_id=cid, quantity=qty, price=entry_price))
        return bracket.id

    async def cancel_entry(self, bracket_id: str, reason: str) -> None:
        """Cancel a working entry (timeout, shutdown); its final state is then read back."""
        bracket = self.book.get(bracket_id)
        entry = bracket.entry_leg
        if entry is None or not bracket.entry_open:
            return
        log.info("bracket %s: cancelling the entry (%s)", bracket_id, reason)
        try:
            await self.executor.cancel_order(bracket.symbol, entry.client_id, bracket_id=bracket_id, leg="ENTRY")
            order = await self.executor.exchange.query_order(bracket.symbol, client_order_id=entry.client_id)
        except Rejected as exc:
            if exc.code in (-2011, -2013) and bracket.entry_filled_qty == 0:
                self.apply(bracket_id, self._event(K.ENTRY_ENDED, client_id=entry.client_id,
                                                   reason=f"{reason}; never reached the exchange"))
            else:
                log.error("bracket %s: entry cancel failed: %s", bracket_id, exc)
            return
        except ExchangeError as exc:
            log.error("bracket %s: entry cancel failed (%s); retried later", bracket_id, exc)
            return
        await self.apply_order(order, reason=reason)

    def expired_entries(self) -> list[str]:
        """Brackets whose LIMIT entry has been working past its deadline."""
        now = self.clock.now_ms()
        out = []
        for b in self.book.active():
            meta = self.meta.get(b.id)
            if b.entry_open and meta and meta.entry_deadline_ms is not None and now >= meta.entry_deadline_ms:
                out.append(b.id)
        return out

    # -- the driver ---------------------------------------------------------------------------

    async def drive(self, bracket_id: str) -> None:
        """Do whatever the bracket needs next until nothing is left (one driver per bracket)."""
        if bracket_id in self._driving:
            self._rerun.add(bracket_id)
            return
        self._driving.add(bracket_id)
        try:
            for _ in range(MAX_DRIVE_STEPS):
                self._rerun.discard(bracket_id)
                try:
                    progressed = await self._step(bracket_id)
                except (_Stop, ExchangeError) as exc:
                    log.error("bracket %s: step interrupted (%s); reconciliation will continue it", bracket_id, exc)
                    break
                if not progressed and bracket_id not in self._rerun:
                    break
            else:
                log.error("bracket %s: still busy after %d steps; leaving it to reconciliation",
                          bracket_id, MAX_DRIVE_STEPS)
        finally:
            self._driving.discard(bracket_id)

    async def _step(self, bid: str) -> bool:
        b = self.book.get(bid)
        if b.state.is_terminal or b.state in (S.PLANNED, S.ENTRY_SENT):
            return False
        meta = self.meta_of(b)
        if b.open_qty > 0:
            if b.state is S.FLATTENING:
                if not b.live_legs(Leg.FLATTEN):
                    why = b.failure_reason or b.close_reason or "flatten"
                    return await self._flatten(b, why, bool(b.failure_reason))
                return False
            if b.needs_protection:
                stops = sum(1 for r in b.legs if r.leg is Leg.STOP_LOSS)
                if b.state is S.EXITING:
                    return await self._flatten(b, "stop lost while exiting", False)
                if meta.protect_failure or stops >= self.settings.protect_attempts:
                    why = meta.protect_failure or f"stop-loss refused {stops} times"
                    return await self._flatten(b, f"protection failed: {why}", True)
                await self._protect(b)
                return True
            if b.state is S.PROTECTED:
                if b.needs_resize:
                    await self._resize(b)
                    return True
                if await self._cancel_superseded(b):
                    return True
                if self._wants_tp(b):
                    await self._place_tp(b, self._tp_price(b, meta), None)
                    return True
            return False
        # flat (or never filled)
        if b.entry_open:
            if b.exit_filled_qty > 0 or b.state is S.FLATTENING:
                await self.cancel_entry(bid, "position closed before the entry finished")
                return not self.book.get(bid).entry_open
            return False
        live = b.live_legs()
        if live:
            cancellable = [r for r in live if r.leg is not Leg.FLATTEN or r.status is LegStatus.OPEN]
            if not cancellable:
                return False
            for record in cancellable:
                await self._cancel_leg(b, record, "position flat: sibling cancelled")
            return True
        if b.entry_filled_qty == 0:
            return False
        if b.failure_reason:
            self.apply(bid, self._event(K.FAIL, reason=b.failure_reason))
        else:
            self.apply(bid, self._event(K.POSITION_FLAT))
        return False

    # -- protection -------------------------------------------------------------------------------

    def _sl_price(self, b: Bracket, meta: BracketMeta) -> Decimal:
        stop = b.active_stop
        if stop is not None and stop.price is not None:
            return stop.price
        avg = b.avg_entry_price
        assert avg is not None
        raw = avg * (1 - b.side.sign * Decimal(str(meta.sl_fraction)))
        return self.rules[b.symbol].round_price(raw, Rounding.away_from_market(b.exit_side))

    def _tp_price(self, b: Bracket, meta: BracketMeta) -> Decimal:
        for r in reversed(b.legs):
            if r.leg is Leg.TAKE_PROFIT and r.price is not None:
                return r.price
        avg = b.avg_entry_price
        assert avg is not None
        raw = avg * (1 + b.side.sign * Decimal(str(meta.tp_fraction)))
        # never take profit earlier than asked: a SELL TP rounds up, a BUY TP down
        return self.rules[b.symbol].round_price(raw, Rounding.passive(b.exit_side))

    def _wants_tp(self, b: Bracket) -> bool:
        if b.live_legs(Leg.TAKE_PROFIT) or any(r.leg is Leg.TAKE_PROFIT and r.filled_qty for r in b.legs):
            return False
        return sum(1 for r in b.legs if r.leg is Leg.TAKE_PROFIT) < self.settings.protect_attempts

    def _leg_qty(self, b: Bracket, *, closes_all: bool) -> Decimal | None:
        return None if closes_all else self.rules[b.symbol].round_qty(b.open_qty)

    async def _protect(self, b: Bracket) -> None:
        """Stop first (created first: it leads in the protective lane), take-profit alongside."""
        meta = self.meta_of(b)
        sl_price = self._sl_price(b, meta)
        sl_cid = b.next_client_id(Leg.STOP_LOSS)
        sl_qty = self._leg_qty(b, closes_all=self.settings.stop_close_position)
        if self.apply(b.id, self._event(K.SL_SUBMITTED, client_id=sl_cid, quantity=sl_qty, price=sl_price,
                                        algo=True)) is None:
            return
        want_tp = self._wants_tp(self.book.get(b.id))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_sl(b.id, sl_cid, sl_qty, sl_price))
            if want_tp:
                tg.create_task(self._place_tp(self.book.get(b.id), self._tp_price(b, meta), None))

    async def _send_sl(self, bid: str, cid: str, qty: Decimal | None, price: Decimal) -> None:
        b = self.book.get(bid)
        request = AlgoOrderRequest(b.symbol, b.exit_side, OrderType.STOP_MARKET, cid, trigger_price=price,
                                   quantity=qty, close_position=qty is None, reduce_only=qty is not None,
                                   working_type=WorkingType.MARK_PRICE)
        try:
            algo = await self.executor.place_algo(request, bracket_id=bid, leg=Leg.STOP_LOSS.name)
        except ExchangeError as exc:
            self._leg_failed(bid, cid, exc, protective=True)
            return
        self.apply_algo_state(bid, algo, "")

    async def _place_tp(self, b: Bracket, price: Decimal, qty_override: Decimal | None) -> None:
        cid = b.next_client_id(Leg.TAKE_PROFIT)
        as_algo = self.settings.take_profit == "algo"
        closes_all = as_algo and self.settings.stop_close_position
        qty = qty_override if qty_override is not None else self._leg_qty(b, closes_all=closes_all)
        if not as_algo and qty is None:
            qty = self.rules[b.symbol].round_qty(b.open_qty)
        if self.apply(b.id, self._event(K.TP_SUBMITTED, client_id=cid, quantity=qty, price=price,
                                        algo=as_algo)) is None:
            return
        try:
            if as_algo:
                request = AlgoOrderRequest(b.symbol, b.exit_side, OrderType.TAKE_PROFIT_MARKET, cid,
                                           trigger_price=price, quantity=qty, close_position=qty is None,
                                           reduce_only=qty is not None, working_type=WorkingType.MARK_PRICE)
                algo = await self.executor.place_algo(request, bracket_id=b.id, leg=Leg.TAKE_PROFIT.name)
                self.apply_algo_state(b.id, algo, "")
            else:
                assert qty is not None
                order_req = OrderRequest(b.symbol, b.exit_side, OrderType.LIMIT, qty, cid, price=price,
                                         time_in_force=TimeInForce.GTC, reduce_only=True)
                order = await self.executor.place_order(order_req, bracket_id=b.id, leg=Leg.TAKE_PROFIT.name)
                self.apply_order_state(b.id, order, None, None, "")
        except ExchangeError as exc:
            self._leg_failed(b.id, cid, exc, protective=False)

    def _leg_failed(self, bid: str, cid: str, exc: ExchangeError, *, protective: bool) -> None:
        why = _reason(exc)
        log.error("bracket %s: %s refused: %s", bid, cid, why)
        leg = self.book.get(bid).leg_by_client_id(cid)
        if leg is not None and leg.status.is_live:
            self.apply(bid, self._event(K.LEG_REJECTED, client_id=cid, reason=why))
        if protective and isinstance(exc, Rejected) and exc.code in FLATTEN_NOW_CODES:
            self.meta_of(self.book.get(bid)).protect_failure = why

    async def _resize(self, b: Bracket) -> None:
        """Protection smaller than the position: the bigger stop goes first, then the old one is cancelled."""
        meta = self.meta_of(b)
        stops = b.live_legs(Leg.STOP_LOSS)
        if stops and all(r.quantity is not None and r.quantity < b.open_qty for r in stops):
            cid = b.next_client_id(Leg.STOP_LOSS)
            qty = self.rules[b.symbol].round_qty(b.open_qty)
            price = self._sl_price(b, meta)
            if self.apply(b.id, self._event(K.SL_SUBMITTED, client_id=cid, quantity=qty, price=price,
                                            algo=True)) is None:
                return
            await self._send_sl(b.id, cid, qty, price)
            after = self.book.get(b.id)
            record = after.leg_by_client_id(cid)
            if record is not None and record.status is not LegStatus.OPEN and after.state is S.RESIZING:
                if not any(r.status is LegStatus.SENT for r in after.live_legs(Leg.STOP_LOSS)):
                    self.apply(b.id, self._event(K.RESIZE_ABANDONED, reason=record.reason))
                meta.protect_failure = meta.protect_failure or f"resized stop refused: {record.reason}"
                await self._flatten(self.book.get(b.id), f"protection failed: {meta.protect_failure}", True)
            return
        tps = b.live_legs(Leg.TAKE_PROFIT)
        if tps and all(r.quantity is not None and r.quantity < b.open_qty for r in tps):
            await self._place_tp(b, self._tp_price(b, meta), self.rules[b.symbol].round_qty(b.open_qty))

    async def _cancel_superseded(self, b: Bracket) -> bool:
        """After a resize: cancel the older stops/take-profits the newest acknowledged ones replace."""
        done = False
        for leg in (Leg.STOP_LOSS, Leg.TAKE_PROFIT):
            live = b.live_legs(leg)
            acked = [r for r in live if r.status is LegStatus.OPEN]
            if len(live) < 2 or not acked:
                continue
            newest = acked[-1]
            if newest.quantity is not None and newest.quantity < b.open_qty:
                continue
            for record in live:
                if record.client_id != newest.client_id and record.status is LegStatus.OPEN:
                    await self._cancel_leg(b, record, "replaced by a resized order")
                    done = True
        return done

    async def _cancel_leg(self, b: Bracket, record: LegRecord, reason: str) -> None:
        try:
            if record.algo:
                gone = not await self.executor.cancel_algo(b.symbol, record.client_id, bracket_id=b.id,
                                                           leg=record.leg.name)
            else:
                gone = not await self.executor.cancel_order(b.symbol, record.client_id, bracket_id=b.id,
                                                            leg=record.leg.name)
        except ExchangeError as exc:
            log.error("bracket %s: cancelling %s failed (%s); reconciliation will retry", b.id, record.client_id, exc)
            raise _Stop() from exc
        if gone:
            await self.sync_leg(b.id, record)  # learn what became of it (e.g. triggered and filled)
            current = self.book.get(b.id).leg_by_client_id(record.client_id)
            if current is None or not current.status.is_live:
                return
        self.apply(b.id, self._event(K.LEG_CANCELLED, client_id=record.client_id, reason=reason))

    # -- flattening ---------------------------------------------------------------------------------

    async def flatten(self, bracket_id: str, reason: str, *, failed: bool = False) -> None:
        """Close the bracket's position with a reduce-only MARKET order (and cancel what is left)."""
        b = self.book.get(bracket_id)
        if b.entry_open:
            await self.cancel_entry(bracket_id, reason)
            b = self.book.get(bracket_id)
        if b.open_qty > 0 and b.state is not S.FLATTENING:
            await self._flatten(b, reason, failed)
        await self.drive(bracket_id)

    async def _flatten(self, b: Bracket, reason: str, failed: bool) -> bool:
        attempts = sum(1 for r in b.legs if r.leg is Leg.FLATTEN)
        if attempts >= self.settings.protect_attempts + 2:
            log.critical("bracket %s: flatten failed %d times; the position stays for reconciliation",
                         b.id, attempts)
            return False
        rules = self.rules[b.symbol]
        qty = rules.round_qty(b.open_qty, market=True)
        if qty <= 0:
            log.error("bracket %s: open quantity %s is below one step; cannot flatten", b.id, b.open_qty)
            return False
        cid = b.next_client_id(Leg.FLATTEN)
        log.warning("bracket %s: flattening %s %s (%s)", b.id, qty, b.symbol, reason)
        if self.apply(b.id, self._event(K.FLATTEN_SUBMITTED, client_id=cid, quantity=qty, failed=failed,
                                        reason=reason)) is None:
            return False
        request = OrderRequest(b.symbol, b.exit_side, OrderType.MARKET, qty, cid, reduce_only=True)
        try:
            order = await self.executor.place_order(request, bracket_id=b.id, leg=Leg.FLATTEN.name)
        except ExchangeError as exc:
            self._leg_failed(b.id, cid, exc, protective=False)
            return False
        self.apply_order_state(b.id, order, None, None, "")
        return True

    # -- persistence ----------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        live = {b.id for b in self.book.all()}
        return {"tag": self.tag, "next_number": self.next_number,
                "meta": {k: m.to_document() for k, m in self.meta.items() if k in live}}

    def restore(self, document: dict[str, Any]) -> None:
        self.next_number = max(self.next_number, int(document.get("next_number", 1)))
        for key, data in (document.get("meta") or {}).items():
            self.meta[key] = BracketMeta.from_dict(data)
        for b in self.book.all():
            self.next_number = max(self.next_number, b.number + 1)
            if b.state.is_terminal:
                self._reported.add(b.id)


class _Stop(Exception):
    """Internal: a step could not complete; the driver stops and reconciliation picks it up."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, Rejected):
        return f"{exc.code}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"
