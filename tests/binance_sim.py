"""Shared wiring for the connector-against-simulator tests (tests/test_binance_sim_*.py).

``BinanceFutures`` is pointed at a ``SimServer`` on 127.0.0.1 exactly as paper mode wires it:
the sim's URLs and key, and the sim's own clock (``server.clock``) as the connector's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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


def load_recorded(data_dir: Path, symbols: tuple[str, ...] = SYMBOLS) -> dict[str, SymbolData]:
    return {s: load_symbol_data(data_dir / "futures-2023", s) for s in symbols}


def sim_server(recorded: dict[str, SymbolData], *, speed: float | None = None, warmup_bars: int = 300,
               **kwargs: object) -> SimServer:
    return SimServer(Venue(recorded, warmup_bars=warmup_bars), api_key=KEY, api_secret=SECRET,
                     speed=speed, **kwargs)  # type: ignore[arg-type]


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
