"""In-process ``ExchangePort`` over the simulated venue, for replays as fast as the machine allows.

Time is a ``FakeClock`` that only the data moves: ``market_stream`` advances the venue one
1m bar at a time whenever its consumer wants the next event, so a replay runs exactly as
fast as the engine consumes it. Tests (or a replay driver) may also move time explicitly
with ``advance(seconds)`` / ``advance_to(ms)``. Every state change of the engine reaches
``user_stream`` as kernel events; refusals raise the kernel's ``Rejected(code, msg)`` with
Binance's code and message.

Construct with ``LocalExchange.from_folder(folder, symbols, settings)`` or around a
``Venue`` you built yourself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from config.settings import SimSettings
from core.clock import FakeClock
from core.errors import ExchangeError, Rejected
from core.events import CandleClosed, MarkPriceUpdate, MarketEvent, ReconcileNeeded, UserEvent
from core.types import (
    AlgoOrder,
    AlgoOrderRequest,
    Balance,
    Candle,
    CommissionRate,
    Fill,
    FundingRate,
    Income,
    MarginType,
    MarkPrice,
    Order,
    OrderRequest,
    Position,
    SymbolRules,
    Timeframe,
)
from exchanges.sim import convert
from exchanges.sim.errors import SimError
from exchanges.sim.feed import MINUTE_MS, kline_rows, next_funding_time
from exchanges.sim.matching import EngineConfig, MatchingEngine
from exchanges.sim.records import SimEvent
from exchanges.sim.venue import KlineTick, MarketTick, MarkTick, Venue, VenueConfig

log = logging.getLogger(__name__)

USER_QUEUE_MAX = 100_000
T = TypeVar("T")


def engine_config(settings: SimSettings) -> EngineConfig:
    """The engine's money parameters from the ``[sim]`` settings (floats → exact decimals)."""
    return EngineConfig(
        balance=Decimal(repr(settings.balance_usdt)), maker_fee=Decimal(repr(settings.maker_fee)),
        taker_fee=Decimal(repr(settings.taker_fee)), slippage_bps=Decimal(repr(settings.slippage_bps)),
        default_leverage=settings.default_leverage, pessimistic=settings.pessimistic,
    )


def venue_config(settings: SimSettings, *, intrabar_events: bool) -> VenueConfig:
    return VenueConfig(path_steps=settings.path_steps,
                       default_funding_rate=Decimal(repr(settings.default_funding_rate)),
                       intrabar_events=intrabar_events)


class LocalExchange:
    """ExchangePort implemented directly on the matching engine (no sockets)."""

    def __init__(self, venue: Venue, clock: FakeClock | None = None) -> None:
        self.venue = venue
        self.clock = clock or FakeClock(venue.now_ms)
        self._user: deque[UserEvent] = deque()
        self._user_overflowed = False
        self._user_signal = asyncio.Event()
        self._market: deque[MarketEvent] = deque()
        self._subs: tuple[frozenset[str], tuple[Timeframe, ...], bool] | None = None
        self._closed = False

    @classmethod
    def from_folder(cls, folder: Path, symbols: Sequence[str], settings: SimSettings | None = None, *,
                    start_ms: int | None = None, warmup_bars: int = 1500) -> LocalExchange:
        s = settings or SimSettings()
        venue = Venue.from_folder(folder, symbols, engine_config=engine_config(s),
                                  config=venue_config(s, intrabar_events=False), start_ms=start_ms,
                                  warmup_bars=warmup_bars)
        return cls(venue)

    @property
    def pending_user_events(self) -> int:
        """User events produced but not yet taken by ``user_stream`` (a replay waits for 0)."""
        return len(self._user)

    @property
    def engine(self) -> MatchingEngine:
        """The matching engine (tests and fault injection: e.g. ``engine.split_fills = 3``)."""
        return self.venue.engine

    # ------------------------------------------------------------------ time

    async def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` and deliver what happened."""
        await self.advance_to(self.venue.now_ms + round(seconds * 1000))

    async def advance_to(self, t_ms: int) -> None:
        self._step(t_ms)
        await self.clock.advance(0)

    def _step(self, t_ms: int) -> None:
        events, ticks = self.venue.advance_to(t_ms)
        if self.venue.now_ms > self.clock.now_ms():
            self.clock.set_ms(self.venue.now_ms)
        self._dispatch_user(events)
        self._dispatch_market(ticks)

    def _dispatch_user(self, events: list[SimEvent]) -> None:
        for ev in events:
            if len(self._user) >= USER_QUEUE_MAX:
                # The consumer is not reading: drop and tell it to reconcile instead.
                self._user_overflowed = True
                continue
            self._user.append(convert.user_event(ev))
        if events:
            self._user_signal.set()

    def _dispatch_market(self, ticks: list[MarketTick]) -> None:
        if self._subs is None:
            return
        symbols, timeframes, marks = self._subs
        for t in ticks:
            if isinstance(t, KlineTick) and t.candle.closed and t.candle.symbol in symbols:
                if Timeframe.M1 in timeframes:
                    self._market.append(CandleClosed(t.candle, received_ms=t.time_ms))
                end = t.candle.open_time_ms + MINUTE_MS
                for tf in timeframes:
                    if tf is not Timeframe.M1 and end % tf.ms == 0:
                        rows = kline_rows(self.venue.data[t.candle.symbol], tf, now_ms=end,
                                          start_ms=end - tf.ms, end_ms=None, limit=1)
                        for row in rows:
                            self._market.append(CandleClosed(row, received_ms=t.time_ms))
            elif isinstance(t, MarkTick) and marks and t.symbol in symbols:
                self._market.append(MarkPriceUpdate(t.symbol, t.mark, t.mark, t.funding_rate,
                                                    t.next_funding_ms, t.time_ms))

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The one translation point: SimError → Rejected; engine events → user stream."""
        try:
            result = fn(*args, **kwargs)
        except SimError as exc:
            self._dispatch_user(self.venue.engine.drain())
            raise Rejected(exc.code, exc.msg, endpoint=fn.__name__, http_status=exc.http_status) from exc
        self._dispatch_user(self.venue.engine.drain())
        return result

    # ------------------------------------------------------------------ reference data

    async def server_time_ms(self) -> int:
        return self.venue.now_ms

    async def symbol_rules(self, symbols: Sequence[str] | None = None) -> dict[str, SymbolRules]:
        wanted = symbols or list(self.venue.specs)
        return {s: self.venue.specs[s].rules for s in wanted if s in self.venue.specs}

    async def klines(self, symbol: str, timeframe: Timeframe, *, start_ms: int | None = None,
                     end_ms: int | None = None, limit: int = 500) -> list[Candle]:
        if symbol not in self.venue.data:
            raise Rejected(-1121, "Invalid symbol.", endpoint="klines")
        return kline_rows(self.venue.data[symbol], timeframe, now_ms=self.venue.now_ms + 1,
                          start_ms=start_ms, end_ms=end_ms, limit=limit)

    async def mark_price(self, symbol: str) -> MarkPrice:
        mark = self.venue.engine.mark_price(symbol)
        if mark is None:
            raise Rejected(-1121, "Invalid symbol.", endpoint="premiumIndex")
        return MarkPrice(symbol, mark, mark, self.venue.current_funding_estimate(symbol),
                         next_funding_time(self.venue.now_ms), self.venue.now_ms)

    async def funding_rates(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
                            limit: int = 100) -> list[FundingRate]:
        f = self.venue.data[symbol].funding
        if f is None:
            return []
        out = []
        for i in range(len(f)):
            t = int(f.time_ms[i])
            if t > self.venue.now_ms or (start_ms is not None and t < start_ms) or (end_ms is not None and t > end_ms):
                continue
            out.append(FundingRate(symbol, f.rate_decimal(i), t))
        return out[:limit] if start_ms is not None else out[-limit:]

    async def commission_rate(self, symbol: str) -> CommissionRate:
        cfg = self.venue.engine.config
        return CommissionRate(symbol, cfg.maker_fee, cfg.taker_fee)

    # ------------------------------------------------------------------ orders

    async def place_order(self, request: OrderRequest) -> Order:
        o = self._call(self.venue.engine.place_order, symbol=request.symbol, side=request.side,
                       order_type=request.type, quantity=request.quantity, now_ms=self.venue.now_ms,
                       price=request.price, time_in_force=request.time_in_force,
                       reduce_only=request.reduce_only, client_order_id=request.client_order_id,
                       position_side=request.position_side, good_till_ms=request.good_till_ms)
        return convert.order(self.venue.engine.orders[o.order_id].snapshot())

    async def cancel_order(self, symbol: str, *, order_id: int | None = None,
                           client_order_id: str | None = None) -> Order:
        return convert.order(self._call(self.venue.engine.cancel_order, symbol, now_ms=self.venue.now_ms,
                                        order_id=order_id, client_order_id=client_order_id))

    async def query_order(self, symbol: str, *, order_id: int | None = None,
                          client_order_id: str | None = None) -> Order:
        return convert.order(self._call(self.venue.engine.get_order, symbol, order_id=order_id,
                                        client_order_id=client_order_id))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [convert.order(o) for o in self.venue.engine.open_orders(symbol)]

    async def cancel_all_orders(self, symbol: str) -> None:
        self._call(self.venue.engine.cancel_all, symbol, self.venue.now_ms)

    async def place_algo_order(self, request: AlgoOrderRequest) -> AlgoOrder:
        a = self._call(self.venue.engine.place_algo, symbol=request.symbol, side=request.side,
                       order_type=request.type, now_ms=self.venue.now_ms, quantity=request.quantity,
                       trigger_price=request.trigger_price, price=request.price,
                       working_type=request.working_type, close_position=request.close_position,
                       reduce_only=request.reduce_only, time_in_force=request.time_in_force,
                       price_protect=request.price_protect, activate_price=request.activate_price,
                       callback_rate=request.callback_rate, client_algo_id=request.client_algo_id,
                       position_side=request.position_side)
        return convert.algo(a)

    async def cancel_algo_order(self, symbol: str, *, algo_id: int | None = None,
                                client_algo_id: str | None = None) -> None:
        self._call(self.venue.engine.cancel_algo, now_ms=self.venue.now_ms, algo_id=algo_id,
                   client_algo_id=client_algo_id)

    async def query_algo_order(self, symbol: str, *, algo_id: int | None = None,
                               client_algo_id: str | None = None) -> AlgoOrder:
        return convert.algo(self._call(self.venue.engine.get_algo, algo_id=algo_id, client_algo_id=client_algo_id))

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return [convert.algo(a) for a in self.venue.engine.open_algos(symbol)]

    async def cancel_all_algo_orders(self, symbol: str) -> None:
        self._call(self.venue.engine.cancel_all_algos, symbol, self.venue.now_ms)

    # ------------------------------------------------------------------ account

    async def positions(self, symbol: str | None = None) -> list[Position]:
        eng = self.venue.engine
        syms = [symbol] if symbol else list(eng.account.positions)
        return [convert.position(eng.position_state(s)) for s in syms if eng.account.position(s).qty]

    async def balances(self) -> list[Balance]:
        eng = self.venue.engine
        upnl = sum((eng.position_state(s).unrealized for s in eng.account.positions), Decimal(0))
        return [Balance("USDT", eng.account.wallet, max(Decimal(0), eng.available_balance()),
                        eng.account.cross_wallet(), upnl, self.venue.now_ms)]

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        return int(self._call(self.venue.engine.set_leverage, symbol, leverage, self.venue.now_ms))

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        try:
            self._call(self.venue.engine.set_margin_type, symbol, margin_type, self.venue.now_ms)
        except Rejected as exc:
            if exc.code != -4046:  # "No need to change margin type." is success
                raise

    async def get_position_mode(self) -> bool:
        return self.venue.engine.account.dual_side

    async def set_position_mode(self, dual_side: bool) -> None:
        try:
            self._call(self.venue.engine.set_dual_side, dual_side)
        except Rejected as exc:
            if exc.code != -4059:
                raise

    async def user_trades(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
                          limit: int = 500) -> list[Fill]:
        eng = self.venue.engine
        rows = [t for t in eng.trades if t.symbol == symbol
                and (start_ms is None or t.time_ms >= start_ms) and (end_ms is None or t.time_ms <= end_ms)]
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return [convert.fill(t, eng.orders[t.order_id].client_order_id) for t in rows]

    async def income(self, *, symbol: str | None = None, income_type: str | None = None,
                     start_ms: int | None = None, end_ms: int | None = None, limit: int = 1000) -> list[Income]:
        rows = [e for e in self.venue.engine.account.ledger
                if (symbol is None or e.symbol == symbol) and (income_type is None or e.income_type == income_type)
                and (start_ms is None or e.time_ms >= start_ms) and (end_ms is None or e.time_ms <= end_ms)]
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return [Income(e.symbol, e.income_type, e.amount, "USDT", e.time_ms, e.tran_id,
                       str(e.trade_id) if e.trade_id else "", e.info) for e in rows]

    # ------------------------------------------------------------------ streams

    async def market_stream(self, symbols: Sequence[str], timeframes: Sequence[Timeframe], *,
                            mark_price: bool = True) -> AsyncIterator[MarketEvent]:
        """Closed candles (and marks) as the data plays; the replay ends with the data."""
        unknown = [s for s in symbols if s not in self.venue.data]
        if unknown:
            raise ExchangeError(f"symbols not simulated: {unknown}", endpoint="market_stream")
        self._subs = (frozenset(symbols), tuple(timeframes), mark_price)
        try:
            while not self._closed:
                if self._market:
                    yield self._market.popleft()
                    continue
                if self.venue.now_ms >= self.venue.end_ms:
                    return
                # Up to the next bar's first path point (its open), not just this bar's close: a
                # bar's close is known at the next bar's open, so an order decided on it trades
                # there, as in a paper or live session (where the venue has moved on by the time
                # the order arrives) — and the next bar's path was drawn before that order. (At
                # the start the clock stands on the last millisecond of a bar: the next open is
                # one millisecond away, and the step publishes that bar's close.)
                next_open = (self.venue.now_ms // MINUTE_MS + 1) * MINUTE_MS
                self._step(min(next_open, self.venue.end_ms))
                await asyncio.sleep(0)  # let user-stream consumers run between bars
        finally:
            self._subs = None

    async def user_stream(self) -> AsyncIterator[UserEvent]:
        while not self._closed:
            if self._user_overflowed:
                self._user_overflowed = False
                self._user.clear()
                yield ReconcileNeeded("user event queue overflowed", self.venue.now_ms)
                continue
            if self._user:
                yield self._user.popleft()
                continue
            self._user_signal.clear()
            await self._user_signal.wait()

    async def close(self) -> None:
        self._closed = True
        self._user_signal.set()
