"""Shared wiring for the connector-against-simulator tests (tests/test_binance_sim_*.py).

``BinanceFutures`` is pointed at a ``SimServer`` on 127.0.0.1 exactly as paper mode wires it:
the sim's URLs and key, and the sim's own clock (``server.clock``) as the connector's clock.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from pathlib import Path

import pytest

from config.secrets import Secrets
from config.settings import BreakerSettings, ExchangeSettings, RetrySettings
from core.ports import Clock
from exchanges.binance.client import BinanceFutures
from exchanges.binance.urls import BinanceUrls
from exchanges.sim.feed import SymbolData, load_symbol_data
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue

KEY, SECRET = "integration-key", "integration-secret"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
MIN = 60_000

SETTINGS = ExchangeSettings(
    request_timeout_s=2.0,
    retry=RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05),
    breaker=BreakerSettings(),
    ws_reconnect_max_delay_s=0.2,
)


@functools.cache
def _recorded(folder: Path, symbol: str) -> SymbolData:
    return load_symbol_data(folder, symbol)


def load_recorded(data_dir: Path, symbols: tuple[str, ...] = SYMBOLS) -> dict[str, SymbolData]:
    """The real futures-2023 1m candles, loaded once per test session (venues only read them)."""
    return {s: _recorded(data_dir / "futures-2023", s) for s in symbols}


def sim_server(recorded: dict[str, SymbolData], *, speed: float | None = None, warmup_bars: int = 300,
               start_ms: int | None = None, **kwargs: object) -> SimServer:
    return SimServer(Venue(recorded, warmup_bars=warmup_bars, start_ms=start_ms), api_key=KEY,
                     api_secret=SECRET, speed=speed, **kwargs)  # type: ignore[arg-type]


def connector(server: SimServer, *, clock: Clock | None = None, settings: ExchangeSettings = SETTINGS,
              secrets: Secrets | None = None) -> BinanceFutures:
    """The paper-mode wiring: the sim's URLs, key/secret and clock."""
    return BinanceFutures(BinanceUrls(rest=server.rest_url, ws=server.ws_url),
                          clock=clock if clock is not None else server.clock, settings=settings,
                          secrets=secrets or Secrets(api_key=KEY, api_secret=SECRET))


@asynccontextmanager
async def running(server: SimServer) -> AsyncIterator[SimServer]:
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Collector:
    """Drains an async iterator of events into ``items`` in the background."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self._events = events
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self._events:
            self.items.append(event)

    async def wait_for(self, pred: Callable[[Any], bool], timeout_s: float = 5.0) -> Any:
        """The first collected item matching ``pred`` (waiting in real time for it)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for item in self.items:
                    if pred(item):
                        return item
                await asyncio.sleep(0.005)

    async def wait_count(self, pred: Callable[[Any], bool], n: int, timeout_s: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                hits = [i for i in self.items if pred(i)]
                if len(hits) >= n:
                    return hits
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)  # our own task's cancellation
        await self._events.aclose()  # type: ignore[attr-defined]


async def connected(server: SimServer, n: int, *, route: str | None = None, timeout_s: float = 5.0) -> None:
    """Wait (real time) until the sim holds ``n`` websocket connections (on ``route`` if given)."""
    async with asyncio.timeout(timeout_s):
        while sum(1 for c in server.hub.connections if route is None or c.route == route) < n:
            await asyncio.sleep(0.005)


async def reconnected(server: SimServer, n: int, *, route: str | None = None, timeout_s: float = 5.0) -> None:
    """Like ``connected`` on a manual clock: nudge simulated time (100 ms at a time) so the
    connector's reconnect backoff, which sleeps on the sim's clock, can elapse."""
    async with asyncio.timeout(timeout_s):
        while sum(1 for c in server.hub.connections if route is None or c.route == route) < n:
            await server.advance(0.1)
            await asyncio.sleep(0.005)


class SkewedClock:
    """A machine clock ``skew_ms`` off the venue's (a bad NTP setup): same pace, other time."""

    def __init__(self, base: Clock, skew_ms: int) -> None:
        self._base, self._skew_ms = base, skew_ms

    def now_ms(self) -> int:
        return self._base.now_ms() + self._skew_ms

    def time(self) -> float:
        return self.now_ms() / 1000

    def monotonic(self) -> float:
        return self._base.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)


# -- shared fixtures (import them into a test module: `from tests.binance_sim import client, recorded, server`)


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return load_recorded(data_dir)


@pytest.fixture
async def server(recorded: dict[str, SymbolData]) -> AsyncIterator[SimServer]:
    srv = sim_server(recorded)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: SimServer) -> AsyncIterator[BinanceFutures]:
    c = connector(server)
    await c.start()
    yield c
    await c.close()
