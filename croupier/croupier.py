"""The croupier: the one object the engine talks to about orders, positions and money.

``Croupier.start`` sets the account up (one-way mode, margin type, leverage), recovers the
state directory (newest valid snapshot + journal, ``state/recovery.py``) and reconciles with
the exchange before anything trades. After that the engine calls ``open_bracket`` for its
decisions, feeds every user-stream event to ``on_user_event`` in order, and runs ``run`` in its
TaskGroup (LIMIT entry timeouts, periodic reconciliation, snapshots). ``shutdown`` applies the
exit policy and writes the final snapshot. Closed brackets are reported as ``ClosedTrade``
through ``on_trade_closed`` once their fills (and fees) have been seen, or after a grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from config.settings import CroupierSettings
from core import metrics
from core.errors import ExchangeError
from core.events import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    Decision,
    FillUpdate,
    MarginCall,
    OrderUpdate,
    ReconcileNeeded,
    UserEvent,
)
from core.ports import Clock, ExchangePort
from core.types import ZERO, Fill, MarginType, OrderRequest, Side
from croupier.bracket import Bracket, BracketEvent, BracketState, EventKind
from croupier.bracket_book import BracketBook, journal_sink
from croupier.executor import OrderExecutor
from croupier.ids import Leg, is_casino_id, session_tag
from croupier.oco import OCOManager
from croupier.reconcile import Discrepancy, OutsideTrades, Reconciler, ReconcileReport
from croupier.sweep import sweep
from croupier.tracker import PositionTracker
from state.journal import Journal
from state.recovery import BRACKETS_KEY, recover_state_dir
from state.snapshot import SnapshotWriter

log = logging.getLogger(__name__)

CLOSE_GRACE_S = 5.0  # wait this long for a closed bracket's last fills (fees) before reporting it
TICK_S = 1.0
MAX_KEPT_TERMINAL = 200
# journal entries a snapshot must make redundant before the journal is rewritten without them
# (a rewrite is ~2 fsyncs on the loop; recovery skips reflected entries, so waiting costs nothing)
JOURNAL_COMPACT_MIN_ENTRIES = 1000
# A bracket in one of these states has an order in flight that decides whether a position is
# protected: a snapshot (its encoding runs on the event loop, milliseconds with many symbols) waits for it.
_IN_FLIGHT = frozenset({BracketState.PLANNED, BracketState.ENTRY_SENT, BracketState.ENTRY_PARTIAL,
                        BracketState.ENTRY_FILLED, BracketState.PROTECTING, BracketState.RESIZING})
MAX_RECONCILE_DEFER = 3.0  # a periodic reconciliation waits at most this many intervals for a quiet moment


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One finished bracket, for the report, the risk gate and the player's debounce."""

    bracket_id: str
    symbol: str
    side: Side
    quantity: Decimal
    entry_time_ms: int
    entry_price: Decimal
    exit_time_ms: int
    exit_price: Decimal
    exit_reason: str  # take_profit | stop_loss | flatten | failed | external
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    confidence: float
    votes: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class BegunEntry:
    """A bracket registered and journaled whose entry request has not been sent yet."""

    bracket_id: str
    request: OrderRequest


@dataclass(frozen=True, slots=True)
class StartReport:
    extra_state: dict[str, Any]
    discrepancies: tuple[Discrepancy, ...]
    recovery_problems: tuple[str, ...] = ()
    restored_brackets: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    policy: str
    open_positions: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    errors: tuple[str, ...] = ()


class Croupier:
    """Facade over the OCO manager, executor, reconciler, tracker and state files."""

    def __init__(
        self, exchange: ExchangePort, clock: Clock, settings: CroupierSettings, *, state_dir: Path,
        session_id: str, symbols: Sequence[str], on_trade_closed: Callable[[ClosedTrade], None] | None = None,
        extra_state: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.session_id = session_id
        self.tag = session_tag(session_id)
        self.symbols = list(symbols)
        self.on_trade_closed = on_trade_closed
        self.extra_state = extra_state
        self._tracker = PositionTracker(dedupe_keys=settings.fill_dedupe_keys)
        self._marks: dict[str, Decimal] = {}
        self._closing: dict[str, int] = {}  # bracket id → monotonic ms it became terminal
        self._since_ms = 0
        self._reconcile_due = False
        self._started = False
        self.journal: Journal | None = None
        self.oco: OCOManager | None = None
        self.writer: SnapshotWriter | None = None
        self._save_scheduled = False
        self._save_deferred = False
        self._stopping = False  # shutdown began: it reconciles itself; no periodic pass races its flattens
        self.reconciler: Reconciler | None = None
        # Set by the engine: True while a closed candle is on its way to a decision. Periodic
        # reconciliation and deferred snapshots wait for a quiet moment instead of delaying it.
        self.hot: Callable[[], bool] = lambda: False

    # -- start -------------------------------------------------------------------------------

    async def start(self) -> StartReport:
        """Account setup, local recovery, reconciliation. Trade only after this returns."""
        rules = await self.exchange.symbol_rules(self.symbols)
        errors = await self._setup_account()
        store, recovered = recover_state_dir(self.state_dir, self.clock, generations=self.settings.snapshot_generations,
                                             fsync=self.settings.journal_fsync)
        self.journal = recovered.journal
        state = recovered.state
        book = BracketBook.from_document(recovered.brackets, journal_sink(self.journal), on_change=self._changed)
        if isinstance(state.get("tracker"), dict):
            self._tracker = PositionTracker.from_dict(state["tracker"], dedupe_keys=self.settings.fill_dedupe_keys)
        fresh = not isinstance(state.get("tracker"), dict)
        for fill in recovered.fills:
            self._tracker.apply_fill(fill)
        for income in recovered.incomes:
            self._tracker.apply_income(income)
        section = state.get("croupier") or {}
        # the exchange's time, not ours: userTrades are filtered by it (a simulator runs in the past)
        self._since_ms = int(section.get("since_ms") or await self.exchange.server_time_ms())
        executor = OrderExecutor(self.exchange, self.journal, self.clock, attempts=self.settings.protect_attempts)
        self.oco = OCOManager(book, executor, self.clock, self.settings, tag=self.tag, rules=dict(rules),
                              on_terminal=self._terminal)
        self.oco.restore(section)
        self.oco.on_opened = lambda _b: self._save()
        self.writer = SnapshotWriter(store, self._document, self.clock, self.settings.snapshot_interval_s,
                                     self.journal, compact_min_entries=JOURNAL_COMPACT_MIN_ENTRIES)
        self.reconciler = Reconciler(self.exchange, self.oco, executor, self.journal, symbols=self.symbols,
                                     tag=self.tag, adoption_policy=self.settings.adoption_policy,
                                     on_outside_exit=self._book_outside_exit)
        if fresh:
            for balance in await self.exchange.balances():
                if balance.wallet_balance:
                    self._tracker.open_balance(balance.asset, balance.wallet_balance, time_ms=self.clock.now_ms())
        report = await self.reconcile("start")
        await self._backfill_fills()  # after reconciliation: unknown entries now have their ids
        self._save()
        self._started = True
        engine = state.get("engine")
        return StartReport(
            extra_state=dict(engine) if isinstance(engine, dict) else {},
            discrepancies=tuple(report.discrepancies),
            recovery_problems=tuple(recovered.report.problems()),
            restored_brackets=len(recovered.brackets),
            errors=tuple(errors + report.errors),
        )

    async def _setup_account(self) -> list[str]:
        errors = []
        try:
            if await self.exchange.get_position_mode():
                await self.exchange.set_position_mode(False)
        except ExchangeError as exc:
            errors.append(f"one-way position mode: {exc}")
        for symbol in self.symbols:
            try:
                await self.exchange.set_margin_type(symbol, MarginType(self.settings.margin_type))
                if self.settings.leverage:
                    await self.exchange.set_leverage(symbol, self.settings.leverage)
            except ExchangeError as exc:
                errors.append(f"{symbol} margin/leverage: {exc}")
        for problem in errors:
            log.error("account setup: %s", problem)
        return errors

    async def _backfill_fills(self) -> None:
        """Trades the stream may have missed (a crash, a reconnect): from userTrades, deduplicated."""
        assert self.oco is not None
        symbols = set(self.symbols) & ({b.symbol for b in self.oco.book.all()} | set(self._tracker.symbols()))
        for symbol in sorted(symbols):
            try:
                trades = await self.exchange.user_trades(symbol, start_ms=self._since_ms)
            except ExchangeError as exc:
                log.error("userTrades %s unavailable (%s): the tracker may lag until the stream catches up",
                          symbol, exc)
                continue
            # userTrades carries no clientOrderId on Binance: our trades are those of orders our
            # brackets know by exchange id, and of the triggered children of their algo orders
            # (other sessions' and hand trades are not ours)
            known = {r.exchange_id for b in self.oco.book.all() for r in b.legs if r.exchange_id and not r.algo}
            known |= set(self.oco.algo_children)
            for fill in trades:
                if fill.order_id in known or is_casino_id(fill.client_order_id, self.tag):
                    self._on_fill(fill)

    async def _book_outside_exit(self, bracket: Bracket, quantity: Decimal) -> OutsideTrades | None:
        """A bracket's position shrank outside Casino: book those trades (the newest reducing ones).

        Returns what was found (quantity, notional, latest time); None when nothing was."""
        assert self.oco is not None
        try:
            # the most recent trades (no start time: the bracket's times are on our clock, not the venue's)
            trades = await self.exchange.user_trades(bracket.symbol)
        except ExchangeError as exc:
            log.error("userTrades %s unavailable (%s): the outside exit is not in the tracker", bracket.symbol, exc)
            return None
        known = {r.exchange_id for r in bracket.legs if r.exchange_id}
        left = quantity
        found: list[Fill] = []
        for fill in sorted(trades, key=lambda f: f.time_ms, reverse=True):
            if left <= 0:
                break
            if fill.side is bracket.exit_side and fill.order_id not in known and fill.quantity <= left:
                booked_now = self._tracker.apply_fill(fill)
                if booked_now:
                    assert self.journal is not None
                    self.journal.record_fill(fill)
                if booked_now or self._bracket_of(fill) is None:  # nobody charged its fee to a bracket yet
                    meta = self.oco.meta_of(bracket)
                    meta.fees += fill.commission
                    meta.fills_seen += fill.quantity
                found.append(fill)
                left -= fill.quantity
        if not found:
            return None
        return OutsideTrades(sum((f.quantity for f in found), ZERO), sum((f.quantity * f.price for f in found), ZERO),
                             max(f.time_ms for f in found))

    # -- queries -----------------------------------------------------------------------------

    @property
    def tracker(self) -> PositionTracker:
        return self._tracker

    @property
    def book(self) -> BracketBook:
        assert self.oco is not None, "start() first"
        return self.oco.book

    def has_bracket(self, symbol: str) -> bool:
        return self.oco is not None and self.oco.active_on(symbol) is not None

    def open_bracket_count(self) -> int:
        return len(self.oco.book.active()) if self.oco else 0

    def exposure(self) -> dict[str, Decimal]:
        out = {}
        for symbol, quantity, avg_entry in self._tracker.open_quantities():
            price = self._marks.get(symbol) or avg_entry or ZERO
            out[symbol] = abs(quantity) * price
        return out

    def status(self) -> dict[str, Any]:
        brackets = []
        for b in self.oco.book.all() if self.oco else []:
            brackets.append({
                "id": b.id, "symbol": b.symbol, "side": b.side.value, "state": b.state.value,
                "qty": str(b.open_qty), "requested_qty": str(b.requested_qty),
                "tp": _price(_last_price(b, Leg.TAKE_PROFIT)), "sl": _price(_last_price(b, Leg.STOP_LOSS)),
                "reason": b.failure_reason or b.close_reason,
            })
        positions = {}
        for symbol in self._tracker.symbols():
            view = self._tracker.position(symbol)
            if view.quantity:
                positions[symbol] = {"quantity": str(view.quantity), "avg_entry": _price(view.avg_entry),
                                     "unrealized_pnl": _price(view.unrealized_pnl)}
        return {"session_tag": self.tag, "brackets": brackets, "positions": positions,
                "realized_pnl": str(self._tracker.realized_pnl())}

    # -- trading --------------------------------------------------------------------------------

    async def open_bracket(self, decision: Decision, quantity: Decimal) -> str | None:
        """Place the entry of a new bracket; None (reason logged, state consistent) if refused."""
        begun = self.begin_bracket(decision, quantity)
        if begun is None:
            return None
        return await self.send_entry(begun)

    def begin_bracket(self, decision: Decision, quantity: Decimal, *, durable: bool = True) -> BegunEntry | None:
        """``open_bracket``'s synchronous half: the bracket exists (``has_bracket`` is true) and its
        entry is journaled; ``send_entry`` sends it. With ``durable=False`` the caller must call
        ``save_now`` before sending (one snapshot for a burst of brackets). None if refused."""
        if not self._started or self.oco is None:
            log.error("open_bracket before start(): refused")
            return None
        if durable:
            begun = self.oco.begin(decision, quantity)
        else:  # made durable together, before any of them leaves (save_now, or the entry's own journaled intent)
            assert self.journal is not None
            with self.journal.deferred_sync():
                begun = self.oco.begin(decision, quantity, durable=False)
        return None if begun is None else BegunEntry(*begun)

    async def send_entry(self, begun: BegunEntry) -> str | None:
        """Send a begun bracket's entry; its id, or None (reason logged) if the exchange refused it."""
        assert self.oco is not None
        bid = await self.oco.send_entry(begun.bracket_id, begun.request)
        if bid is not None:
            self._tracker_funding_start(bid)
        return bid

    def abandon_entry(self, begun: BegunEntry, reason: str) -> None:
        """A begun bracket whose entry will not be sent (the session began to stop): it ends
        without a fill and frees its symbol; nothing was sent, so nothing is cancelled."""
        assert self.oco is not None
        if self.oco.book.get(begun.bracket_id).state is BracketState.ENTRY_SENT:  # not already ended by a cancel
            self.oco.apply(begun.bracket_id, BracketEvent(EventKind.ENTRY_ENDED, self.clock.now_ms(),
                                                          client_id=begun.request.client_order_id, reason=reason))

    def save_now(self) -> None:
        """Journal synced and a snapshot now (after ``begin_bracket(durable=False)``, before the entries leave)."""
        if self.journal is not None:
            self.journal.sync()
        self._save()

    def _tracker_funding_start(self, bid: str) -> None:
        assert self.oco is not None
        meta = self.oco.meta.get(bid)
        if meta is not None:
            meta.funding_start = self._tracker.position(self.oco.book.get(bid).symbol).funding

    async def on_user_event(self, event: UserEvent) -> None:
        """Every user-stream event, in the order received."""
        assert self.oco is not None, "start() first"
        if isinstance(event, OrderUpdate):
            if event.fill is not None:
                self._on_fill(event.fill)
            fill = event.fill
            await self.oco.apply_order(event.order, fill_price=fill.price if fill else None,
                                       fill_qty=fill.quantity if fill else None,
                                       fill_time_ms=fill.time_ms if fill else None)
        elif isinstance(event, FillUpdate):
            # TRADE_LITE carries no commission or realized PnL: booking it would make the
            # ORDER_TRADE_UPDATE of the same trade a "duplicate" and lose its fee. The order
            # update that follows books it; TRADE_LITE is only an early hint.
            log.debug("TRADE_LITE %s %s @ %s", event.fill.client_order_id, event.fill.quantity, event.fill.price)
        elif isinstance(event, AlgoUpdate):
            await self.oco.apply_algo(event.algo)
        elif isinstance(event, AccountUpdate):
            self._tracker.apply_account_update(event)
            self._changed()
        elif isinstance(event, ReconcileNeeded):
            await self.reconcile(f"stream: {event.reason}")
        elif isinstance(event, MarginCall):
            log.warning("margin call on %s", ", ".join(event.symbols))
        elif isinstance(event, AccountConfigUpdate):
            log.info("account config update: %s leverage %s", event.symbol, event.leverage)
        self._emit_closed()

    def _on_fill(self, fill: Fill) -> None:
        assert self.oco is not None and self.journal is not None
        if not self._tracker.apply_fill(fill):
            return
        self.journal.record_fill(fill)
        bracket = self._bracket_of(fill)
        if bracket is not None:
            meta = self.oco.meta_of(bracket)
            meta.fees += fill.commission
            meta.fills_seen += fill.quantity
        self._changed()

    def _bracket_of(self, fill: Fill) -> Bracket | None:
        """The bracket a fill belongs to: by client id, else (a userTrade) by exchange order id."""
        assert self.oco is not None
        if fill.client_order_id:
            return self.oco.book.find_by_client_id(fill.client_order_id)
        child_of = self.oco.algo_children.get(fill.order_id)
        if child_of is not None:
            return self.oco.book.find_by_client_id(child_of)
        for b in self.oco.book.all():
            if any(r.exchange_id == fill.order_id and not r.algo for r in b.legs):
                return b
        return None

    def on_mark_price(self, symbol: str, mark: Decimal) -> None:
        if mark > 0:
            self._marks[symbol] = mark
            self._tracker.set_mark(symbol, mark)

    async def reconcile(self, reason: str) -> ReconcileReport:
        assert self.reconciler is not None, "start() first"
        self._reconcile_due = False
        report = await self.reconciler.run(reason)
        self._emit_closed()
        return report

    # -- background ------------------------------------------------------------------------------

    async def run(self) -> None:
        """LIMIT entry timeouts, periodic reconciliation, snapshots — until cancelled."""
        assert self.oco is not None and self.writer is not None, "start() first"
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.writer.run())
            tg.create_task(self._loop())

    async def _loop(self) -> None:
        assert self.oco is not None
        last_reconcile = self.clock.monotonic()
        # brackets that closed while we were away (found by start) are reported now, once the
        # engine restored its own state: a report from inside start() would be overwritten
        self._emit_closed()
        while True:
            await self.clock.sleep(TICK_S)
            for bid in self.oco.expired_entries():
                await self.oco.cancel_entry(bid, "entry timeout")
            urgent = self._reconcile_due or self.oco.reconcile_requested
            waited = self.clock.monotonic() - last_reconcile
            interval = self.settings.reconcile_interval_s
            # a periodic pass never runs in the middle of a decision or while an order is in
            # flight for protection (it would queue its REST calls and decoding ahead of them)
            periodic = (waited >= interval and not self._stopping
                        and (waited >= MAX_RECONCILE_DEFER * interval or not self._busy()))
            if urgent or periodic:
                last_reconcile = self.clock.monotonic()
                self.oco.reconcile_requested = False
                await self.reconcile("after an unknown outcome" if urgent else "periodic")
            self._emit_closed()
            if len(self.oco.book.all()) > MAX_KEPT_TERMINAL and not self._closing:
                self._save_in_background()  # its document, taken now, still holds the brackets dropped next
                self.oco.book.drop_terminal()

    # -- closing trades ---------------------------------------------------------------------------

    def _terminal(self, bracket: Bracket) -> None:
        if bracket.entry_filled_qty > 0:
            self._closing[bracket.id] = int(self.clock.monotonic() * 1000)
        self._save_in_background()

    def _emit_closed(self, *, force: bool = False) -> None:
        assert self.oco is not None
        now = int(self.clock.monotonic() * 1000)
        for bid, since in list(self._closing.items()):
            b = self.oco.book.get(bid)
            meta = self.oco.meta_of(b)
            seen = meta.fills_seen
            if not force and seen < b.entry_filled_qty + b.exit_filled_qty and now - since < CLOSE_GRACE_S * 1000:
                continue
            del self._closing[bid]
            trade = self._closed_trade(b)
            metrics.TRADES.labels(symbol=b.symbol, side=b.side.value, outcome=trade.exit_reason).inc()
            if self.on_trade_closed is not None:
                try:
                    self.on_trade_closed(trade)
                except Exception:  # the engine's callback must not break order handling
                    log.exception("on_trade_closed failed for %s", bid)

    def _closed_trade(self, b: Bracket) -> ClosedTrade:
        assert self.oco is not None
        meta = self.oco.meta_of(b)
        entry = b.avg_entry_price or ZERO
        exit_ = b.avg_exit_price or ZERO
        qty = b.entry_filled_qty
        reason = _exit_reason(b)
        funding = self._tracker.position(b.symbol).funding - meta.funding_start
        return ClosedTrade(
            bracket_id=b.id, symbol=b.symbol, side=b.side, quantity=qty,
            # the exchange's fill times; our clock only when no fill record carried one
            entry_time_ms=_first_known(b.entry_fill_time_ms, b.first_fill_ms, b.created_ms), entry_price=entry,
            exit_time_ms=_first_known(b.exit_fill_time_ms, b.closed_ms, self.clock.now_ms()), exit_price=exit_,
            exit_reason=reason, gross_pnl=(exit_ - entry) * b.exit_filled_qty * b.side.sign,
            fees=meta.fees, funding=funding, confidence=meta.confidence, votes=meta.votes,
        )

    # -- shutdown ------------------------------------------------------------------------------------

    async def shutdown(self, policy: Literal["flatten", "keep"], *, urgent: bool = False) -> ShutdownReport:
        """flatten: close everything on Casino's symbols; keep: leave positions with their TP/SL."""
        assert self.oco is not None and self.writer is not None and self.journal is not None
        self._stopping = True
        errors: list[str] = []
        swept = None
        for b in self.oco.book.active():
            if b.entry_open:  # a working entry never outlives the session (filled part is kept/flattened)
                await self.oco.cancel_entry(b.id, "shutdown")
        if policy == "flatten":
            if not urgent:
                for b in self.oco.book.active():
                    await self.oco.flatten(b.id, "shutdown: flatten")
            result = await sweep(self.exchange, self.symbols, passes=self.settings.sweep_passes)
            swept = result.to_dict()
            errors += result.errors
            if self.oco.book.active():
                report = await self.reconcile("shutdown")
                errors += report.errors
        open_positions = []
        for b in self.oco.book.active():
            if b.open_qty > 0:
                open_positions.append({
                    "bracket_id": b.id, "symbol": b.symbol, "side": b.side.value, "quantity": str(b.open_qty),
                    "entry_price": _price(b.avg_entry_price), "stop_loss": _price(_last_price(b, Leg.STOP_LOSS)),
                    "take_profit": _price(_last_price(b, Leg.TAKE_PROFIT)), "state": b.state.value,
                })
        self._emit_closed(force=True)
        self._save()
        return ShutdownReport(policy=policy, open_positions=open_positions, sweep=swept, errors=tuple(errors))

    # -- snapshots -------------------------------------------------------------------------------------

    def _document(self) -> dict[str, Any]:
        assert self.oco is not None
        section = self.oco.to_document()
        section["since_ms"] = self._since_ms
        section["session_id"] = self.session_id
        return {
            BRACKETS_KEY: self.oco.book.to_document(),
            "croupier": section,
            "tracker": self._tracker.to_dict(),
            "engine": dict(self.extra_state()) if self.extra_state else {},
        }

    def _changed(self) -> None:
        """A bracket transitioned: snapshot on the next loop turn.

        Deferred with call_soon so the save (a few ms with fsync) runs while the next order
        request is already on the wire, never before it; the journal holds the transition
        in the meantime (written at once, fsynced by its thread).
        """
        if self.writer is None:
            return
        self.writer.mark_dirty()
        if not self._save_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): save right away
                self._save()
                return
            self._save_scheduled = True
            loop.call_soon(self._scheduled_save)

    def _scheduled_save(self) -> None:
        self._save_scheduled = False
        if self._busy():
            # An order in flight for protection (or a candle on its way to a decision) goes first:
            # the next transition, ``save_soon`` or the writer's interval saves this state.
            self._save_deferred = True
            return
        self._save_deferred = False
        self._save_in_background()

    def save_soon(self) -> None:
        """Run a snapshot that was deferred, now that the hot path is quiet (the engine calls this)."""
        if self._save_deferred and not self._save_scheduled:
            self._changed()

    def _busy(self) -> bool:
        """True while a decision is under way or any bracket has an order in flight for protection."""
        if self.hot():
            return True
        return self.oco is not None and any(b.state in _IN_FLIGHT for b in self.oco.book.active())

    def _save(self) -> None:
        """A snapshot durable before this returns: where something must not leave or end before it."""
        if self.writer is not None:
            self.writer.save_now()

    def _save_in_background(self) -> None:
        """A snapshot of this instant, written off the loop (transitions: the journal already has
        them, written at once and group-fsynced; the snapshot only bounds the replay and keeps the meta current)."""
        if self.writer is not None:
            self.writer.save_in_background()

    def close(self) -> None:
        """Finish a snapshot in flight, then close the journal (after shutdown)."""
        if self.writer is not None:
            self.writer.close()
        if self.journal is not None:
            self.journal.close()


def _first_known(*times: int | None) -> int:
    """The first time that is known (not None, not 0)."""
    return next((t for t in times if t), 0)


def _last_price(b: Bracket, leg: Leg) -> Decimal | None:
    for record in reversed(b.legs):
        if record.leg is leg and record.price is not None:
            return record.price
    return None


def _price(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _exit_reason(b: Bracket) -> str:
    if b.state is BracketState.FAILED:
        return "failed"
    reason = b.close_reason
    if reason in ("take_profit", "stop_loss"):
        return reason
    if reason.startswith("flatten"):
        return "flatten"
    return "external"


__all__ = ["BegunEntry", "ClosedTrade", "Croupier", "ShutdownReport", "StartReport"]
