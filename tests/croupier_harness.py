"""Test harness: a Croupier on the simulated exchange over loopback, through the real connector.

``Rig`` starts a ``SimServer`` with a manual clock, a ``BinanceFutures`` pointed at its
rest/ws URLs, pumps the connector's user stream into ``Croupier.on_user_event`` (as the
engine does), and offers ``wait_for`` and ``advance`` for the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.secrets import Secrets
from config.settings import CroupierSettings, ExchangeSettings
from core.events import Decision
from core.types import Side
from croupier.croupier import ClosedTrade, Croupier
from exchanges.binance.client import BinanceFutures
from exchanges.binance.urls import BinanceUrls
from exchanges.sim.feed import SymbolData, load_symbol_data
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue

KEY, SECRET = "crkey", "crsecret"
_DATA: dict[str, SymbolData] = {}


def recorded(data_dir: Path, symbols: tuple[str, ...] = ("BTCUSDT",)) -> dict[str, SymbolData]:
    for s in symbols:
        if s not in _DATA:
            _DATA[s] = load_symbol_data(data_dir / "futures-2023", s)
    return {s: _DATA[s] for s in symbols}


def decision(symbol: str, side: Side, price: Decimal, *, tp: float = 0.01, sl: float = 0.01) -> Decision:
    return Decision(symbol, side, 0, 0.8, tp, sl, (), price)


class Rig:
    def __init__(self, data: dict[str, SymbolData], state_dir: Path, settings: CroupierSettings,
                 session: str = "test-session") -> None:
        self.server = SimServer(Venue(data, warmup_bars=300), api_key=KEY, api_secret=SECRET, admin=True)
        self.data = data
        self.state_dir = state_dir
        self.settings = settings
        self.session = session
        self.closed: list[ClosedTrade] = []
        self.croupier: Croupier | None = None
        self.exchange: BinanceFutures | None = None
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Rig:
        await self.server.start()
        await self.connect()
        return self

    async def connect(self) -> Croupier:
        self.exchange = BinanceFutures(BinanceUrls(rest=self.server.rest_url, ws=self.server.ws_url),
                                       clock=self.server.clock, settings=ExchangeSettings(),
                                       secrets=Secrets(KEY, SECRET))
        await self.exchange.start()
        self.croupier = Croupier(self.exchange, self.server.clock, self.settings, state_dir=self.state_dir,
                                 session_id=self.session, symbols=list(self.data),
                                 on_trade_closed=self.closed.append)
        self._events: list[Any] = []
        ready = asyncio.Event()
        self._pump = asyncio.create_task(self._run_pump(ready))
        await asyncio.wait_for(ready.wait(), 5)
        await self.croupier.start()
        return self.croupier

    async def _run_pump(self, ready: asyncio.Event) -> None:
        assert self.exchange is not None and self.croupier is not None
        stream = self.exchange.user_stream()
        first = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)  # the listen key and socket are set up by the first read
        ready.set()
        event = await first
        while True:
            self._events.append(event)
            await self.croupier.on_user_event(event)
            event = await anext(stream)  # type: ignore[arg-type]

    async def disconnect(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self.croupier is not None:
            self.croupier.close()
        if self.exchange is not None:
            await self.exchange.close()

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        await self.server.stop()

    @property
    def c(self) -> Croupier:
        assert self.croupier is not None
        return self.croupier

    @property
    def ex(self) -> BinanceFutures:
        assert self.exchange is not None
        return self.exchange

    async def mark(self, symbol: str = "BTCUSDT") -> Decimal:
        return (await self.ex.mark_price(symbol)).mark_price

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}: {self.c.status()}")
            await asyncio.sleep(0.02)

    async def advance(self, seconds: float, step: float = 60.0) -> None:
        left = seconds
        while left > 0:
            await self.server.advance(min(step, left))
            left -= step
            await asyncio.sleep(0.05)

    async def advance_until(self, predicate: Callable[[], bool], limit_s: float, step: float = 60.0) -> None:
        spent = 0.0
        while not predicate():
            if spent >= limit_s:
                raise AssertionError(f"not reached within {limit_s} simulated s: {self.c.status()}")
            await self.advance(step, step)
            spent += step
            await asyncio.sleep(0.05)

    def state(self, bid: str) -> str:
        return self.c.book.get(bid).state.value

    async def open_orders(self, symbol: str = "BTCUSDT") -> tuple[list[Any], list[Any]]:
        return await self.ex.open_orders(symbol), await self.ex.open_algo_orders(symbol)

    async def position_qty(self, symbol: str = "BTCUSDT") -> Decimal:
        return sum((p.quantity for p in await self.ex.positions(symbol)), Decimal(0))
