"""The engine: one TaskGroup owning the whole trading path, and the single writer of its state.

Start-up order (nothing trades before reconciliation is done)::

    preflight → croupier.start() (recovery + reconciliation) → warm-up history (REST klines)
    → streams → trading

Per closed 1m candle of a symbol::

    market_data.append_closed → sensor pool (closed timeframes) → player (fresh + latest
    higher-timeframe readings) → sizing → risk gate → croupier.open_bracket

The user stream goes straight to the croupier. Periodic tasks sample equity, feed the risk
gate and refresh metrics. A stop (signal, ``--duration``, crash) runs the shutdown order:
no new entries → in-flight orders settle (bounded; skipped on a second signal) → the exit
policy (flatten or keep) → final snapshot → report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from core.clock import LiveClock
from core.events import (
    CandleClosed,
    Decision,
    MarkPriceUpdate,
    ReconcileNeeded,
    SensorReading,
    Skip,
    StreamGap,
)
from core.market_data import MarketData
from core.metrics import (
    BALANCE_USDT,
    BREAKER_STATE,
    DECISION_LATENCY_SECONDS,
    DRAWDOWN_FRACTION,
    EQUITY_USDT,
    POSITIONS_OPEN,
    REALIZED_PNL_USDT,
    SKIPS,
    TRADES,
    UNREALIZED_PNL_USDT,
)
from core.player import Player, winning_keys
from core.ports import Clock, ExchangePort
from core.report import SessionRecord, TradeRecord
from core.risk import EntryIntent, Exposure, RiskGate
from core.sensor_pool import SensorPool
from core.sensor_tracker import SensorTracker, TrackerParams
from core.session_control import SessionControl
from core.sizing import SizeSkip, SizingParams, size_entry
from core.types import Candle, SymbolRules, Timeframe
from croupier.croupier import ClosedTrade, Croupier

log = logging.getLogger(__name__)

QUOTE = "USDT"
EQUITY_SAMPLE_S = 60.0
PRICE_SAMPLE_MS = 60_000
SETTLE_POLL_S = 0.05  # real seconds between looks at the brackets while a stop settles
SETTLING_STATES = ("PLANNED", "ENTRY_SENT", "PROTECTING", "RESIZING")  # in flight: a stop waits for these


class PreflightFailed(Exception):
    """Preflight refused to trade; the message lists the failed checks (exit code 3)."""


@dataclass
class EngineParts:
    """Everything the composition root built for one session."""

    settings: Settings
    exchange: ExchangePort
    clock: Clock
    croupier: Croupier
    market: MarketData
    pool: SensorPool
    player: Player
    tracker: SensorTracker
    risk: RiskGate
    sizing: SizingParams
    record: SessionRecord
    control: SessionControl
    session_dir: Path
    preflight: Callable[[], Awaitable[tuple[bool, Mapping[str, Any]]]] | None = None
    breakers: Callable[[], Mapping[str, str]] | None = None  # group → CLOSED / HALF_OPEN / OPEN
    banned_until_ms: Callable[[], int] | None = None
    extra_tasks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class _SymbolFeed:
    last_open_ms: int | None = None
    last_price_sample_ms: int = 0
    latest: dict[Timeframe, list[SensorReading]] = field(default_factory=dict)


class Engine:
    """Runs one session on prepared parts; ``run()`` returns the exit reason."""

    def __init__(self, parts: EngineParts) -> None:
        self.p = parts
        self.s = parts.settings
        self.symbols = list(parts.settings.session.symbols)
        self.rules: dict[str, SymbolRules] = {}
        self.ready = False
        self._feeds = {s: _SymbolFeed() for s in self.symbols}
        # replay: wait until the user events of this bar reached the croupier (set by main.py)
        self.settle_user_events: Callable[[], Awaitable[None]] | None = None
        # paper on an in-process simulator: its held clock starts with our streams (set by main.py)
        self.on_ready: Callable[[], None] | None = None
        self._live = LiveClock()  # decision latency is real time whatever the session clock
        self._peak_equity: Decimal | None = None
        self._realized_seen = Decimal(0)
        self._base = Timeframe.M1
        self.bars_processed = 0
        # Fault drill (tests, operators rehearsing a crash): raise after this many live bars.
        self.crash_after_bars: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Preflight, recovery/reconciliation and warm-up: everything before trading."""
        p = self.p
        if p.preflight is not None:
            ok, result = await p.preflight()
            p.record.notes.append(f"preflight: {'passed' if ok else 'FAILED'}")
            if not ok:
                raise PreflightFailed(orjson.dumps(result, default=str).decode())
        self.rules = await p.exchange.symbol_rules(self.symbols)
        missing = [s for s in self.symbols if s not in self.rules]
        if missing:
            raise PreflightFailed(f"the exchange does not list {missing}")
        report = await p.croupier.start()
        self._restore(getattr(report, "extra_state", {}) or {})
        for d in getattr(report, "discrepancies", []) or []:
            p.record.notes.append(f"reconciliation: {d}")
        await self._warm_up()
        self.ready = True
        if self.on_ready is not None:
            self.on_ready()
        log.info("engine ready: %s, %d symbols, exit policy %s", self.s.session.mode, len(self.symbols),
                 self.s.session.on_exit)

    async def run(self) -> str:
        """Trade until a stop is requested; then shut down in order. Returns the exit reason."""
        p = self.p
        async with asyncio.TaskGroup() as tg:
            workers = [
                tg.create_task(self._pump_market_then_stop(), name="market-stream"),
                tg.create_task(self._pump_user(), name="user-stream"),
                tg.create_task(p.croupier.run(), name="croupier"),
                tg.create_task(self._sampler(), name="sampler"),
            ]
            workers += [tg.create_task(factory(), name="extra") for factory in p.extra_tasks]
            await p.control.stop_requested.wait()
            await self._shutdown()
            for task in workers:
                task.cancel()
        return p.control.stop_reason or "stopped"

    async def _shutdown(self) -> None:
        """Entries are already blocked; settle, apply the exit policy, final snapshot.

        A second stop request (``control.urgent``) ends the settle wait at once and turns the
        exit policy into flatten, whichever policy was configured; one that arrives while a
        ``keep`` exit is being applied still flattens afterwards.
        """
        p = self.p
        control = p.control
        began = self._live.monotonic()
        if not control.urgent.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.s.session.shutdown_wait_s):
                    await self._settle(control.urgent)
        waited = self._live.monotonic() - began
        urgent = control.urgent.is_set()
        policy = "flatten" if urgent else self.s.session.on_exit
        result = await p.croupier.shutdown(policy, urgent=urgent)
        if policy == "keep" and control.urgent.is_set():
            policy, urgent = "flatten", True
            result = await p.croupier.shutdown(policy, urgent=True)
        p.record.shutdown = {
            "policy": policy, "urgent": urgent, "second_request": control.urgent_reason or None,
            "settle_wait_s": round(waited, 3), "settle_wait_limit_s": self.s.session.shutdown_wait_s,
        }
        if urgent:
            p.record.notes.append(
                f"second stop request ({control.urgent_reason}) during shutdown: settling skipped after "
                f"{waited:.1f} s, everything flattened at once")
        p.record.open_positions = list(getattr(result, "open_positions", []) or [])
        self.update_account_metrics()

    async def _settle(self, urgent: asyncio.Event) -> None:
        """Wait until no entry is still pending (a bracket in flight gets its protection).

        Polled in real time, not on the session clock: a replay's FakeClock no longer moves
        once its data stopped, and a second stop request must end the wait at once.
        """
        while not urgent.is_set():
            status = self.p.croupier.status()
            pending = [b for b in status.get("brackets", []) if b.get("state") in SETTLING_STATES]
            if not pending:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_POLL_S):
                    await urgent.wait()

    # ------------------------------------------------------------------ warm-up

    async def _warm_up(self) -> None:
        """Seed every ring from REST klines so the first live bar is decided on full windows.

        Base history starts at a bucket boundary of the largest timeframe, so every higher
        bar rebuilt from it is complete; older higher-timeframe bars are fetched directly.
        """
        market = self.p.market
        top = max(market.timeframes, key=lambda t: t.ms)
        now = await self.p.exchange.server_time_ms()  # the venue's time, whatever our clock
        last_open = now - now % self._base.ms - self._base.ms
        want = min(market.capacity, self.s.sensors.window_bars)
        start = last_open + self._base.ms - want * self._base.ms
        start -= start % top.ms
        for symbol in self.symbols:
            for tf in market.higher:
                bars = await self.p.exchange.klines(symbol, tf, end_ms=start - 1, limit=min(want, 1500))
                market.seed(symbol, tf, [b for b in bars if b.open_time_ms + tf.ms <= start])
            base = await self.p.exchange.klines(symbol, self._base, start_ms=start, end_ms=last_open, limit=100_000)
            for candle in base:
                self._append(candle)
                self.p.tracker.on_candle(candle)
                self.p.risk.on_candle(candle)
            # Every timeframe's latest closed bar gets its readings now, so the first live bar
            # is decided with the higher-timeframe context instead of waiting for the next 1h/4h close.
            feed = self._feeds[symbol]
            for reading in await self.p.pool.evaluate(symbol, market.timeframes):
                feed.latest.setdefault(reading.timeframe, []).append(reading)
            log.info("warm-up %s: %d base bars from %d", symbol, len(base), start, extra={"symbol": symbol})

    def _append(self, candle: Candle) -> tuple[Timeframe, ...]:
        feed = self._feeds[candle.symbol]
        if feed.last_open_ms is not None and candle.open_time_ms <= feed.last_open_ms:
            return ()  # already have it (warm-up overlap or a replayed frame): not an error
        closed = self.p.market.append_closed(candle)
        if closed:
            feed.last_open_ms = candle.open_time_ms
        return closed

    # ------------------------------------------------------------------ market path

    async def _pump_market(self) -> None:
        """Events are handled before the next one is read: in a replay, reading drives time,
        so an order decided on bar k reaches the venue on bar k (the connector buffers frames
        of a live socket in its own bounded queue meanwhile)."""
        async for event in self.p.exchange.market_stream(self.symbols, [self._base], mark_price=True):
            if self.p.control.stop_requested.is_set():
                return  # a replay must not play on while it shuts down; live data is no longer used
            if isinstance(event, CandleClosed):
                await self._on_candle(event.candle, self._live.monotonic())
                if self.settle_user_events is not None:
                    await self.settle_user_events()
            elif isinstance(event, MarkPriceUpdate):
                self.p.croupier.on_mark_price(event.symbol, event.mark_price)
            elif isinstance(event, StreamGap):
                self.p.record.errors.append({
                    "time_ms": self.p.clock.now_ms(), "kind": "stream_gap",
                    "message": f"{event.symbol} {event.timeframe.value} {event.from_open_ms}..{event.to_open_ms}: {event.reason}",
                })

    async def _pump_market_then_stop(self) -> None:
        await self._pump_market()
        if not self.p.control.stop_requested.is_set():
            # only a finite source (a replay's recorded data) ends on its own; that ends the session
            self.p.control.request_stop("data_end")
        await asyncio.Event().wait()  # stay until the shutdown cancels every worker

    async def _on_candle(self, candle: Candle, received: float | None = None) -> None:
        feed = self._feeds.get(candle.symbol)
        if feed is None or not candle.closed or candle.timeframe is not self._base:
            return
        if feed.last_open_ms is not None and candle.open_time_ms > feed.last_open_ms + self._base.ms:
            await self._backfill(candle.symbol, feed.last_open_ms + self._base.ms, candle.open_time_ms - 1)
        closed = self._append(candle)
        if not closed:
            return
        await self.process_bar(candle, closed, received=received)

    async def _backfill(self, symbol: str, start_ms: int, end_ms: int) -> None:
        """The first live candle came after a hole in the warm-up: fill it over REST first."""
        bars = await self.p.exchange.klines(symbol, self._base, start_ms=start_ms, end_ms=end_ms, limit=100_000)
        for bar in bars:
            closed = self._append(bar)
            if closed:
                await self.process_bar(bar, closed, decide=False)

    async def process_bar(
        self, candle: Candle, closed: Sequence[Timeframe], *, decide: bool = True, received: float | None = None
    ) -> None:
        """Sensors → tracker → player → (sizing → risk → croupier) for one closed base bar."""
        p = self.p
        symbol = candle.symbol
        feed = self._feeds[symbol]
        self.bars_processed += 1
        if self.crash_after_bars is not None and decide and self.bars_processed >= self.crash_after_bars:
            raise RuntimeError(f"injected crash after {self.bars_processed} bars (CASINO_CRASH_AFTER_BARS)")
        p.tracker.on_candle(candle)
        p.risk.on_candle(candle)
        if candle.open_time_ms - feed.last_price_sample_ms >= PRICE_SAMPLE_MS:
            p.record.sample_price(symbol, candle.open_time_ms + self._base.ms, float(candle.close))
            feed.last_price_sample_ms = candle.open_time_ms
        fresh = await p.pool.evaluate(symbol, closed)
        by_tf: dict[Timeframe, list[SensorReading]] = defaultdict(list)
        for r in fresh:
            by_tf[r.timeframe].append(r)
        for tf in closed:
            feed.latest[tf] = by_tf.get(tf, [])
        close_ms = candle.open_time_ms + self._base.ms
        for tf, readings in by_tf.items():
            p.tracker.record(readings, price=candle.close, at_ms=close_ms)
        if not decide:
            return
        p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))
        if not p.player.open_bar(candle):
            return
        for readings in feed.latest.values():
            p.player.add_readings(readings)
        verdict = p.player.close_bar(symbol, p.tracker.scores())
        if isinstance(verdict, Decision):
            await self._act(verdict, received)
        elif isinstance(verdict, Skip):
            self._count_skip(verdict.reason)

    def _count_skip(self, reason: str) -> None:
        skips = self.p.record.skip_reasons
        skips[reason] = skips.get(reason, 0) + 1

    async def _act(self, decision: Decision, received: float | None) -> None:
        p = self.p
        symbol = decision.symbol
        if not p.control.entries_allowed:
            self._count_skip("draining" if p.control.draining else "stopping")
            SKIPS.labels(reason="draining" if p.control.draining else "stopping").inc()
            return
        exposure = self.exposure()
        equity = exposure.equity
        room = p.risk.entry_headroom(symbol, exposure)
        size = size_entry(
            price=decision.reference_price, sl_fraction=decision.sl_fraction, equity=equity,
            rules=self.rules[symbol], stats=p.tracker.performance(winning_keys(decision)),
            params=p.sizing, market=self.s.croupier.entry_type == "MARKET", max_notional=room,
        )
        if isinstance(size, SizeSkip):
            self._count_skip(f"size_{size.reason}")
            return
        verdict = p.risk.check_entry(EntryIntent(symbol, decision.side, size.notional), exposure)
        if not verdict.allowed:
            self._count_skip(f"risk_{verdict.reason}")
            return
        if received is not None:
            latency = self._live.monotonic() - received
            DECISION_LATENCY_SECONDS.observe(latency)
            p.record.latencies_s["decision"].append(latency)
        p.risk.on_order_sent()
        bracket_id = await p.croupier.open_bracket(decision, size.quantity)
        if bracket_id is None:
            self._count_skip("entry_rejected")
        p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))

    def exposure(self) -> Exposure:
        croupier = self.p.croupier
        equity = croupier.tracker.equity(QUOTE)
        brackets = frozenset(s for s in self.symbols if croupier.has_bracket(s))
        return Exposure(equity if equity is not None else Decimal(0), dict(croupier.exposure()), brackets)

    # ------------------------------------------------------------------ user path

    async def _pump_user(self) -> None:
        async for event in self.p.exchange.user_stream():
            await self.p.croupier.on_user_event(event)
            if isinstance(event, ReconcileNeeded):
                self.p.record.notes.append(f"user stream: reconciled after {event.reason}")

    def on_trade_closed(self, trade: ClosedTrade) -> None:
        """Called by the croupier when a bracket is final: report, risk, metrics."""
        record = TradeRecord(
            trade.bracket_id, trade.symbol, trade.side, trade.quantity, trade.entry_time_ms, trade.entry_price,
            trade.exit_time_ms, trade.exit_price, trade.exit_reason, trade.gross_pnl, trade.fees, trade.funding,
            trade.confidence, tuple(trade.votes),
        )
        self.p.record.trades.append(record)
        book = self.p.croupier.book
        if trade.bracket_id in book:
            unprotected_ms = book.get(trade.bracket_id).unprotected_ms
            if unprotected_ms is not None:  # first fill → stop acknowledged, on the session clock
                self.p.record.latencies_s["unprotected"].append(unprotected_ms / 1000)
        self.p.risk.on_trade_closed(record.net_pnl)
        outcome = "win" if record.net_pnl > 0 else "loss" if record.net_pnl < 0 else "flat"
        TRADES.labels(symbol=trade.symbol, side=trade.side.value, outcome=outcome).inc()

    # ------------------------------------------------------------------ periodic

    async def _sampler(self) -> None:
        while True:
            self.update_account_metrics()
            await self.p.clock.sleep(EQUITY_SAMPLE_S)

    def update_account_metrics(self) -> None:
        """Equity sample for the report; risk gate and Prometheus fed from the tracker."""
        p = self.p
        tracker = p.croupier.tracker
        wallet = tracker.wallet(QUOTE)
        equity = tracker.equity(QUOTE)
        if equity is None:
            equity = wallet
        realized = tracker.realized_pnl()
        unrealized = equity - wallet
        if realized != self._realized_seen:
            p.risk.on_realized(realized - self._realized_seen)
            self._realized_seen = realized
        p.risk.set_unrealized(unrealized)
        p.risk.set_equity(equity)
        if p.breakers is not None:
            for group, state in p.breakers().items():
                is_open = state == "OPEN"
                p.risk.set_breaker(group, is_open)
                BREAKER_STATE.labels(group=group).set({"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}.get(state, 0))
        if p.banned_until_ms is not None:
            until = p.banned_until_ms()
            if until:
                p.risk.set_banned(until)
        self._peak_equity = equity if self._peak_equity is None else max(self._peak_equity, equity)
        drawdown = float((self._peak_equity - equity) / self._peak_equity) if self._peak_equity > 0 else 0.0
        BALANCE_USDT.set(float(wallet))
        EQUITY_USDT.set(float(equity))
        UNREALIZED_PNL_USDT.set(float(unrealized))
        REALIZED_PNL_USDT.set(float(wallet - p.record.starting_balance))
        DRAWDOWN_FRACTION.set(drawdown)
        POSITIONS_OPEN.set(len(p.croupier.exposure()))
        p.record.equity.append((p.clock.now_ms(), float(equity)))
        p.record.final_balance = wallet
        fees = funding = Decimal(0)
        for symbol in tracker.symbols():
            view = tracker.position(symbol)
            fees += sum((amount for asset, amount in view.commissions if asset == QUOTE), Decimal(0))
            funding += view.funding
        p.record.fees_total, p.record.funding_total = fees, funding
        p.tracker.publish_metrics()

    # ------------------------------------------------------------------ state

    def extra_state(self) -> dict[str, Any]:
        """The engine's section of every snapshot (restored by ``_restore``)."""
        p = self.p
        return {
            "tracker": p.tracker.to_dict(),
            "player": p.player.to_dict(),
            "risk": p.risk.to_dict(),
            "skip_reasons": dict(p.record.skip_reasons),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        p = self.p
        if "tracker" in state:
            p.tracker = SensorTracker.from_dict(state["tracker"], TrackerParams.from_settings(self.s.tracker, self.s.player))
        if "player" in state:
            p.player.restore(state["player"])
        if "risk" in state:
            p.risk.restore(state["risk"])

    def status(self) -> dict[str, Any]:
        """JSON-safe view for /status and status.json."""
        p = self.p
        limiter = getattr(p.exchange, "limiter", None)
        usage = limiter.usage() if limiter is not None and hasattr(limiter, "usage") else {}
        return {
            "session_id": p.record.session_id,
            "mode": self.s.session.mode,
            "symbols": self.symbols,
            "ready": self.ready,
            "drain": p.control.draining,
            "stopping": p.control.stop_requested.is_set(),
            "risk_state": p.risk.state.value,
            "breakers": dict(p.breakers()) if p.breakers else {},
            "rate_limits": usage,
            "bars_processed": self.bars_processed,
            "croupier": p.croupier.status(),
            "equity": str(p.croupier.tracker.equity(QUOTE)),
            "time_ms": p.clock.now_ms(),
        }
