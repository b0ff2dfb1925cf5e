"""The engine: one TaskGroup owning the whole trading path, and the single writer of its state.

Start-up order (nothing trades before reconciliation is done)::

    preflight → croupier.start() (recovery + reconciliation) → warm-up history (REST klines)
    → streams → trading

Per closed 1m candle of a symbol::

    market_data.append_closed → sensor pool (closed timeframes) → player (fresh + latest
    higher-timeframe readings) → sizing → risk gate → croupier.open_bracket → tracker votes

Live and paper sessions take every candle already waiting as one burst: all of them are
appended, their sensors evaluated in one pool round trip, then each symbol is decided in
arrival order. Decision latency runs from the frame leaving the socket (real time) to the
entry request; the report splits off the sensor wait. The user stream goes straight to the
croupier. Periodic tasks sample equity, feed the risk gate and refresh metrics; they, the
croupier's periodic reconciliation and its deferred snapshots wait while a burst is being
decided (``hot``). A stop (signal, ``--duration``, crash) runs the shutdown order:
no new entries → in-flight orders settle (bounded; skipped on a second signal) → the exit
policy (flatten or keep) → final snapshot → report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
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
    MarketEvent,
    MarkPriceUpdate,
    ReconcileNeeded,
    SensorReading,
    Skip,
    StreamGap,
)
from core.heap import pause_collector, resume_collector
from core.market_data import MarketData
from core.metrics import (
    BACKFILLED_CANDLES,
    BALANCE_USDT,
    BAR_LATENCY_SECONDS,
    BREAKER_STATE,
    DECISION_LATENCY_SECONDS,
    DECISION_SENSOR_WAIT_SECONDS,
    DRAWDOWN_FRACTION,
    EQUITY_USDT,
    MARKET_BURST_CANDLES,
    POSITIONS_OPEN,
    QUEUE_DEPTH,
    REALIZED_PNL_USDT,
    SKIPS,
    TRADES,
    UNREALIZED_PNL_USDT,
)
from core.player import Player, winning_keys
from core.ports import Clock, ExchangePort
from core.report import SessionRecord, TradeRecord
from core.risk import EntryIntent, Exposure, RiskGate
from core.sensor_pool import PendingReadings, SensorPool
from core.sensor_tracker import SensorTracker, TrackerParams
from core.session_control import SessionControl
from core.sizing import SizeSkip, SizingParams, size_entry
from core.types import Candle, SymbolRules, Timeframe
from croupier.croupier import BegunEntry, ClosedTrade, Croupier
from state.codec import Encoded

log = logging.getLogger(__name__)

QUOTE = "USDT"
EQUITY_SAMPLE_S = 60.0
PRICE_SAMPLE_MS = 60_000
SETTLE_POLL_S = 0.05  # real seconds between looks at the brackets while a stop settles
SETTLING_STATES = ("PLANNED", "ENTRY_SENT", "PROTECTING", "RESIZING")  # in flight: a stop waits for these
BAR_LATENCY_SAMPLES = 20_000
SAMPLER_MAX_WAIT_S = 1.0  # real seconds the account sampler waits for a burst to be decided
TRACKER_STATE_MAX_AGE_S = 5.0  # real seconds a snapshot may reuse the previous tracker section
_MIN_MARKET_QUEUE = 1024  # market events buffered between the stream reader and the engine


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
    # Tuples: the player screens a tuple once and reuses that on every base bar until the
    # timeframe closes again (a 1h timeframe's readings are handed over 60 times).
    latest: dict[Timeframe, tuple[SensorReading, ...]] = field(default_factory=dict)


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
        # Every live bar's candle → verdict latency (whole, and without the sensor wait), for the
        # report: bounded, so a long many-symbol session keeps only the most recent bars.
        self._bar_latencies: deque[float] = deque(maxlen=BAR_LATENCY_SAMPLES)
        self._bar_engine_latencies: deque[float] = deque(maxlen=BAR_LATENCY_SAMPLES)
        parts.record.latencies_s["bar"] = self._bar_latencies  # type: ignore[assignment]
        parts.record.latencies_s["bar_engine"] = self._bar_engine_latencies  # type: ignore[assignment]
        self._peak_equity: Decimal | None = None
        # Candles on their way to a decision: periodic work (reconciliation, snapshots, the
        # account sampler) waits for the count to fall back to zero instead of delaying them.
        self._burst_entries: list[tuple[str, BegunEntry, Decimal, float | None]] | None = None  # see _act
        self._burst_votes: list[tuple[dict[Timeframe, list[SensorReading]], Decimal, int]] | None = None  # see process_bar
        self._tracker_state: Encoded | None = None  # the last tracker section written (see extra_state)
        self._tracker_state_at = 0.0
        self._hot = 0
        self._collector_paused = False  # by the first of the bursts in flight (_handle_events)
        self._quiet = asyncio.Event()
        self._quiet.set()
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
        p.croupier.book.on_protected = self._on_protected
        p.croupier.hot = lambda: self._hot > 0
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
        self._tracker_state = None  # the final snapshot carries the tracker as it is now
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
                bars = await self._latest_klines(symbol, tf, end_ms=start - 1, count=min(want, 1500))
                market.seed(symbol, tf, [b for b in bars if b.open_time_ms + tf.ms <= start])
            base = await self._klines_between(symbol, self._base, start, last_open)
            for candle in base:
                self._append(candle)
                self.p.tracker.on_candle(candle)
                self.p.risk.on_candle(candle)
            # Every timeframe's latest closed bar gets its readings now, so the first live bar
            # is decided with the higher-timeframe context instead of waiting for the next 1h/4h close.
            feed = self._feeds[symbol]
            by_tf: dict[Timeframe, list[SensorReading]] = defaultdict(list)
            for reading in await self.p.pool.evaluate(symbol, market.timeframes):
                by_tf[reading.timeframe].append(reading)
            feed.latest.update((tf, tuple(readings)) for tf, readings in by_tf.items())
            log.info("warm-up %s: %d base bars from %d", symbol, len(base), start, extra={"symbol": symbol})

    # Binance weighs a klines request by its limit: 1000 rows cost 5, 1001–1500 cost 10. Pages of
    # at most 1000 rows fetch the same bars for about half the weight, so a 50-symbol warm-up
    # stays inside one minute's budget (and a simulator holding its clock during warm-up, whose
    # rate-limit window then never rolls, is never waited on).
    _PAGE_ROWS = 1000

    async def _latest_klines(self, symbol: str, tf: Timeframe, *, end_ms: int, count: int) -> list[Candle]:
        """The ``count`` newest closed bars ending at ``end_ms`` (by count, like one request would)."""
        pages: list[list[Candle]] = []
        left, end = count, end_ms
        while left > 0:
            page = await self.p.exchange.klines(symbol, tf, end_ms=end, limit=min(left, self._PAGE_ROWS))
            if not page:
                break
            pages.append(page)
            left -= len(page)
            if len(page) < min(left + len(page), self._PAGE_ROWS):
                break  # the venue has nothing older
            end = page[0].open_time_ms - 1
        return [bar for page in reversed(pages) for bar in page]

    async def _klines_between(self, symbol: str, tf: Timeframe, start_ms: int, end_ms: int) -> list[Candle]:
        """Every closed bar with open time in [start_ms, end_ms], oldest first."""
        out: list[Candle] = []
        start = start_ms
        while start <= end_ms:
            page = await self.p.exchange.klines(symbol, tf, start_ms=start, end_ms=end_ms, limit=self._PAGE_ROWS)
            out += page
            if len(page) < self._PAGE_ROWS:
                break
            start = page[-1].open_time_ms + tf.ms
        return out

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
        """Market events → bursts → decisions.

        A replay (``settle_user_events`` set) reads one event at a time and handles it before
        reading the next: reading drives time there, so an order decided on bar k reaches the
        venue on bar k. A live or paper session reads the stream in its own task into a bounded
        queue and takes everything that is waiting as one burst, so the closed candles of many
        symbols share one sensor-pool round trip (``evaluate_many``) instead of queueing behind
        each other's.
        """
        stream = self.p.exchange.market_stream(self.symbols, [self._base], mark_price=True)
        if self.settle_user_events is not None:
            async for event in stream:
                if self.p.control.stop_requested.is_set():
                    return  # a replay must not play on while it shuts down
                await self._handle_burst([event])
                if isinstance(event, CandleClosed):
                    await self.settle_user_events()
            return
        queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue(max(_MIN_MARKET_QUEUE, 8 * len(self.symbols)))
        depth = QUEUE_DEPTH.labels(queue="market")

        async def read() -> None:
            async for event in stream:
                await queue.put(event)
                depth.set(queue.qsize())
            await queue.put(None)  # the stream ended

        gather_s = self.s.session.burst_gather_ms / 1000.0
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(read(), name="market-reader")
            while True:
                burst: list[MarketEvent] = []
                item = await queue.get()
                while item is not None:
                    burst.append(item)
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                if item is not None and gather_s > 0 and not await self._complete_bar(queue, burst, gather_s):
                    item = None  # the stream ended while the bar was completed: handle it, then stop
                depth.set(queue.qsize())
                if self.p.control.stop_requested.is_set():
                    break  # live data is no longer used
                if burst:
                    await self._handle_burst(burst)
                if item is None:
                    break
            reader.cancel()

    async def _complete_bar(self, queue: asyncio.Queue[MarketEvent | None], burst: list[MarketEvent],
                            window_s: float) -> bool:
        """Wait up to ``window_s`` for the other symbols' closes of the bar that ``burst`` closes.

        The symbols' close frames come in one after the other; a burst taken as soon as the
        queue is momentarily empty held a part of them, and the rest waited until that part was
        decided and its entries were sent and protected (with 50 symbols at speed 20: 14
        symbols decided, then 27 more ~0.3 s later). Completed, the bar is one burst: one sensor
        round trip, every decision before any entry leaves. Returns False when the stream ended
        meanwhile (``burst`` holds everything that came before the end)."""
        bar = max((e.candle.open_time_ms for e in burst
                   if isinstance(e, CandleClosed) and e.candle.timeframe is self._base), default=None)
        if bar is None:
            return True
        missing = set(self.symbols) - {e.candle.symbol for e in burst
                                       if isinstance(e, CandleClosed) and e.candle.open_time_ms == bar}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_s
        while missing:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await queue.get()
            except TimeoutError:
                break
            if item is None:
                return False
            burst.append(item)
            if isinstance(item, CandleClosed) and item.candle.open_time_ms == bar:
                missing.discard(item.candle.symbol)
        return True

    async def _handle_burst(self, events: Sequence[MarketEvent]) -> None:
        """Handle events in arrival order; closed candles' sensors are evaluated together first.

        A symbol appearing twice (the engine fell a bar behind) starts a new burst, so every
        bar is evaluated on its own window. The order of everything that touches trading state
        (tracker, risk, marks, decisions) is the arrival order, exactly as one by one.
        """
        start = 0
        while start < len(events):
            seen: set[str] = set()
            end = start
            while end < len(events):
                event = events[end]
                if isinstance(event, CandleClosed):
                    if event.candle.symbol in seen:
                        break
                    seen.add(event.candle.symbol)
                end += 1
            await self._handle_events(events[start:end])
            start = end

    async def _handle_events(self, events: Sequence[MarketEvent]) -> None:
        if self._hot == 0:
            # no collection on a burst's decision path: they run once it is over (core.heap)
            self._collector_paused = pause_collector()
        self._hot += 1
        self._quiet.clear()
        try:
            await self._handle_events_hot(events)
        finally:
            self._hot -= 1
            if self._hot == 0:
                if self._collector_paused:
                    self._collector_paused = False
                    resume_collector()
                self._quiet.set()
                self.p.croupier.save_soon()

    async def _handle_events_hot(self, events: Sequence[MarketEvent]) -> None:
        live = self._live.monotonic()
        bars: dict[int, tuple[Candle, tuple[Timeframe, ...], float]] = {}
        last_hole = await self._backfill_together(await self._fetch_holes(events))
        for i, event in enumerate(events):
            if isinstance(event, CandleClosed):
                candle = event.candle
                if await self._admit(candle):
                    closed = self._append(candle)
                    if closed:
                        bars[i] = (candle, closed, event.received_s or live)
        if bars and self.settle_user_events is None:
            MARKET_BURST_CANDLES.observe(len(bars))
        readings: Mapping[str, Sequence[SensorReading]] | None = None
        sensor_wait = 0.0
        if len(bars) > 1 or (bars and last_hole is not None):
            # After a hole (a reconnect, a stalled stream) the live bars are sent before its
            # last bar time is applied: the workers compute them while this process runs that
            # bar time through the tracker.
            sent = self.p.pool.submit({c.symbol: closed for c, closed, _ in bars.values()})
            try:
                if last_hole is not None:
                    await self._apply_hole_step(*last_hole)
            finally:
                started = self._live.monotonic()
                readings = await self.p.pool.collect(sent)
                sensor_wait = self._live.monotonic() - started
            if len(bars) > 1:
                self._burst_entries = []  # entries decided in this burst leave together at its end
                self._burst_votes = []  # and the tracker opens the burst's votes after them
        elif last_hole is not None:
            await self._apply_hole_step(*last_hole)
        try:
            try:
                await self._decide_events(events, bars, readings, sensor_wait)
            finally:
                entries, self._burst_entries = self._burst_entries, None
            if entries:
                await self._send_burst_entries(entries)
        finally:
            votes, self._burst_votes = self._burst_votes, None
            for by_tf, price, close_ms in votes or ():
                for tf_readings in by_tf.values():
                    self.p.tracker.record(tf_readings, price=price, at_ms=close_ms)

    async def _decide_events(
        self, events: Sequence[MarketEvent], bars: Mapping[int, tuple[Candle, tuple[Timeframe, ...], float]],
        readings: Mapping[str, Sequence[SensorReading]] | None, sensor_wait: float,
    ) -> None:
        for i, event in enumerate(events):
            if isinstance(event, CandleClosed):
                if i in bars:
                    candle, closed, received = bars[i]
                    await self.process_bar(
                        candle, closed, received=received,
                        readings=None if readings is None else readings.get(candle.symbol, []),
                        sensor_wait_s=sensor_wait,
                    )
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

    def _hole_before(self, candle: Candle) -> tuple[int, int] | None:
        """The open times [start, end] of base bars missing before ``candle`` (None: no hole)."""
        feed = self._feeds.get(candle.symbol)
        if feed is None or not candle.closed or candle.timeframe is not self._base:
            return None
        if feed.last_open_ms is not None and candle.open_time_ms > feed.last_open_ms + self._base.ms:
            return feed.last_open_ms + self._base.ms, candle.open_time_ms - 1
        return None

    async def _fetch_holes(self, events: Sequence[MarketEvent]) -> dict[str, Sequence[Candle] | BaseException]:
        """The missing bars of every symbol of a burst with a hole, fetched together.

        After a reconnect (or a stalled stream) many symbols have a hole at once; fetched one
        after the other (a REST round trip each) they held the burst's first decision back by
        all of them. A failed fetch is kept (``_backfill_together`` raises it)."""
        holes: dict[str, tuple[int, int]] = {}
        for event in events:
            if isinstance(event, CandleClosed) and event.candle.symbol not in holes:
                hole = self._hole_before(event.candle)
                if hole is not None:
                    holes[event.candle.symbol] = hole
        if not holes:
            return {}
        results = await asyncio.gather(*(
            self.p.exchange.klines(symbol, self._base, start_ms=start, end_ms=end, limit=100_000)
            for symbol, (start, end) in holes.items()
        ), return_exceptions=True)
        return dict(zip(holes, results))

    async def _backfill_together(
        self, fetched: Mapping[str, Sequence[Candle] | BaseException],
    ) -> tuple[list[tuple[Candle, tuple[Timeframe, ...]]], PendingReadings] | None:
        """Apply fetched holes bar time by bar time: the bars of one open time, in the burst's
        symbol order, are evaluated as one sensor burst (a round trip per missing bar of every
        symbol was ~250 ms before a 50-symbol session's first decision, the workers idle in
        between). Like a replay, the tracker and risk see every symbol's bar k before any bar
        k+1. Holes after the first failed fetch stay unfilled (``_admit`` would fetch them
        alone) and the failure is raised once the earlier ones are applied.

        The last bar time is only appended and sent to the workers: it is returned, for
        ``_apply_hole_step`` once the live bars are sent too (None: nothing left to apply)."""
        by_time: dict[int, list[Candle]] = defaultdict(list)
        failure: BaseException | None = None
        for bars in fetched.values():
            if isinstance(bars, BaseException):
                failure = bars
                break
            BACKFILLED_CANDLES.inc(len(bars))
            for bar in bars:
                by_time[bar.open_time_ms].append(bar)
        times = sorted(by_time)
        for k, open_ms in enumerate(times):
            closed_now = [(bar, closed) for bar in by_time[open_ms] if (closed := self._append(bar))]
            if not closed_now:
                continue
            sent = self.p.pool.submit({bar.symbol: closed for bar, closed in closed_now})
            if k == len(times) - 1 and failure is None:
                return closed_now, sent
            await self._apply_hole_step(closed_now, sent)
        if failure is not None:
            raise failure
        return None

    async def _apply_hole_step(self, closed_now: list[tuple[Candle, tuple[Timeframe, ...]]],
                               sent: PendingReadings) -> None:
        """One bar time of a hole, its readings sent for: tracker, risk and votes, never a decision."""
        readings = await self.p.pool.collect(sent)
        for bar, closed in closed_now:
            await self.process_bar(bar, closed, decide=False, readings=readings.get(bar.symbol, ()))

    async def _admit(self, candle: Candle) -> bool:
        """A closed base candle of a session symbol, after any hole before it was backfilled."""
        if candle.symbol not in self._feeds or not candle.closed or candle.timeframe is not self._base:
            return False
        hole = self._hole_before(candle)
        if hole is not None:
            await self._backfill(candle.symbol, *hole)
        return True

    async def _backfill(self, symbol: str, start_ms: int, end_ms: int) -> None:
        """A live candle came after a hole (bars missed since the last one): fill it over REST first."""
        bars = await self.p.exchange.klines(symbol, self._base, start_ms=start_ms, end_ms=end_ms, limit=100_000)
        BACKFILLED_CANDLES.inc(len(bars))
        for bar in bars:
            closed = self._append(bar)
            if closed:
                await self.process_bar(bar, closed, decide=False)

    async def process_bar(
        self, candle: Candle, closed: Sequence[Timeframe], *, decide: bool = True, received: float | None = None,
        readings: Sequence[SensorReading] | None = None, sensor_wait_s: float = 0.0,
    ) -> None:
        """Sensors → tracker → player → (sizing → risk → croupier) for one closed base bar.

        ``readings``: the bar's fresh readings when a burst already evaluated them
        (``sensor_wait_s`` then says how long that took); otherwise the pool is asked here.
        The tracker opens this bar's votes after the decision: they only feed later bars'
        scores, so the entry request does not wait for them.
        """
        p = self.p
        symbol = candle.symbol
        feed = self._feeds[symbol]
        self.bars_processed += 1
        if self.crash_after_bars is not None and decide and self.bars_processed >= self.crash_after_bars:
            raise RuntimeError(f"injected crash after {self.bars_processed} bars (CASINO_CRASH_AFTER_BARS)")
        sent = None
        if readings is None:
            # the workers compute while this process judges the tracker's votes and rescores:
            # the bar's decision waits for the longer of the two, not for their sum
            started = self._live.monotonic()
            sent = p.pool.submit({symbol: closed})
        try:
            p.tracker.on_candle(candle)
            p.risk.on_candle(candle)
            if candle.open_time_ms - feed.last_price_sample_ms >= PRICE_SAMPLE_MS:
                p.record.sample_price(symbol, candle.open_time_ms + self._base.ms, float(candle.close))
                feed.last_price_sample_ms = candle.open_time_ms
            if sent is not None and decide:
                p.tracker.score_view()  # kept until read in _decide: nothing changes it in between
        finally:
            if sent is not None:
                readings = (await p.pool.collect(sent)).get(symbol, ())
                sensor_wait_s = self._live.monotonic() - started
        assert readings is not None
        by_tf: dict[Timeframe, list[SensorReading]] = defaultdict(list)
        for r in readings:
            by_tf[r.timeframe].append(r)
        for tf in closed:
            feed.latest[tf] = tuple(by_tf.get(tf, ()))
        try:
            if decide:
                await self._decide(candle, feed, received, sensor_wait_s)
        finally:
            close_ms = candle.open_time_ms + self._base.ms
            if self._burst_votes is not None:
                # Later in the burst (_handle_events_hot), in this order: a vote opened now is
                # judged from the symbol's next candle on and a key without outcomes scores as
                # an absent one, so no decision of this burst can differ — and ~0.2 ms per
                # symbol leaves every later symbol's decision path.
                self._burst_votes.append((by_tf, candle.close, close_ms))
            else:
                for tf_readings in by_tf.values():
                    p.tracker.record(tf_readings, price=candle.close, at_ms=close_ms)

    async def _decide(self, candle: Candle, feed: _SymbolFeed, received: float | None, sensor_wait_s: float) -> None:
        p = self.p
        symbol = candle.symbol
        p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))
        if not p.player.open_bar(candle):
            return
        for latest in feed.latest.values():
            p.player.add_readings(latest)
        verdict = p.player.close_bar(symbol, p.tracker.score_view())
        if received is not None:
            latency = self._live.monotonic() - received
            BAR_LATENCY_SECONDS.observe(latency)
            self._bar_latencies.append(latency)
            self._bar_engine_latencies.append(max(0.0, latency - sensor_wait_s))
        if isinstance(verdict, Decision):
            await self._act(verdict, received, sensor_wait_s)
        elif isinstance(verdict, Skip):
            self._count_skip(verdict.reason)

    def _count_skip(self, reason: str) -> None:
        skips = self.p.record.skip_reasons
        skips[reason] = skips.get(reason, 0) + 1

    async def _act(self, decision: Decision, received: float | None, sensor_wait_s: float = 0.0) -> None:
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
            DECISION_SENSOR_WAIT_SECONDS.observe(sensor_wait_s)
            # the sensor wait apart, so the engine's own share is visible (sensors/* is another job)
            p.record.latencies_s["decision"].append(latency)
            p.record.latencies_s["decision_sensors"].append(sensor_wait_s)
            p.record.latencies_s["decision_engine"].append(max(0.0, latency - sensor_wait_s))
        p.risk.on_order_sent()
        if self._burst_entries is not None:
            # In a burst the entry is registered now (the symbol counts as taken for the next
            # symbols' risk checks) and sent once every symbol is decided (_send_burst_entries).
            begun = p.croupier.begin_bracket(decision, size.quantity, durable=False)
            if begun is None:
                self._count_skip("entry_rejected")
            else:
                self._burst_entries.append((symbol, begun, size.notional, received))
            p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))
            return
        bracket_id = await p.croupier.open_bracket(decision, size.quantity)
        if bracket_id is None:
            self._count_skip("entry_rejected")
        p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))

    async def _send_burst_entries(self, entries: list[tuple[str, BegunEntry, Decimal, float | None]]) -> None:
        """One snapshot makes every begun bracket's meta durable, then the entries leave one after
        the other, in decision order: each entry's fill is protected before the next entry goes
        (sent all at once, every fill of a busy burst waited for its stop behind the others').

        ``latency_s.entry_sent`` (candle received → its entry request leaving) shows what the
        rest of the burst, that snapshot and the earlier entries add to a decision's latency.
        """
        p = self.p
        p.croupier.save_now()

        async def send(symbol: str, begun: BegunEntry, received: float | None) -> None:
            if not p.control.entries_allowed:  # the session began to stop after this was decided
                p.croupier.abandon_entry(begun, "not sent: the session is stopping")
                self._count_skip("draining" if p.control.draining else "stopping")
                p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))
                return
            if received is not None:
                p.record.latencies_s["entry_sent"].append(self._live.monotonic() - received)
            if await p.croupier.send_entry(begun) is None:
                self._count_skip("entry_rejected")
            p.player.set_bracket_active(symbol, p.croupier.has_bracket(symbol))

        for symbol, begun, _, received in entries:
            await send(symbol, begun, received)

    def exposure(self) -> Exposure:
        croupier = self.p.croupier
        equity = croupier.tracker.equity(QUOTE)
        brackets = frozenset(s for s in self.symbols if croupier.has_bracket(s))
        positions = dict(croupier.exposure())
        for symbol, _, notional, _ in self._burst_entries or ():
            # decided in this burst, not sent yet: counted at its intended notional, as if filled
            positions.setdefault(symbol, notional)
        return Exposure(equity if equity is not None else Decimal(0), positions, brackets)

    # ------------------------------------------------------------------ user path

    async def _pump_user(self) -> None:
        async for event in self.p.exchange.user_stream():
            await self.p.croupier.on_user_event(event)
            if isinstance(event, ReconcileNeeded):
                self.p.record.notes.append(f"user stream: reconciled after {event.reason}")

    def _on_protected(self, bracket_id: str, seconds: float) -> None:
        """A bracket's first fill got its stop acknowledged after ``seconds`` (real time)."""
        self.p.record.latencies_s["protect"].append(seconds)

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
            # never between a candle and its decision: wait (briefly) for the burst to finish
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAMPLER_MAX_WAIT_S):
                    await self._quiet.wait()
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
        """The engine's section of every snapshot (restored by ``_restore``).

        The tracker's part (every open vote: tens of thousands with many symbols) is rebuilt at
        most every ``TRACKER_STATE_MAX_AGE_S`` real seconds and reused in between: snapshots
        follow every bracket transition, one of them before each entry leaves, and the votes
        only tune later scores. The final snapshot of a session always has the current one.
        """
        p = self.p
        now = self._live.monotonic()
        if self._tracker_state is None or now - self._tracker_state_at >= TRACKER_STATE_MAX_AGE_S:
            self._tracker_state = Encoded.of_json(p.tracker.to_json())  # serialised once, written as is until refreshed
            self._tracker_state_at = now
        return {
            "tracker": self._tracker_state,
            "player": p.player.to_dict(),
            "risk": p.risk.to_dict(),
            "skip_reasons": dict(p.record.skip_reasons),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        p = self.p
        self._tracker_state = None  # a snapshot written before this must not be reused after it
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
