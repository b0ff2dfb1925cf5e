"""``BinanceFutures``: the kernel's ExchangePort over Binance USD-M (live, demo, or any base URL).

Construction wires the pieces bottom-up: signer from ``Secrets`` → ``BinanceHttp`` (limiter,
breakers, time sync) → ``BinanceRest`` → this facade, which adds what the port promises beyond
single endpoints: symbol-rule rounding of every outgoing number, kline pagination with closed
bars only, priority lanes by intent, and gap-free streams.

Lifecycle::

    client = BinanceFutures.from_settings(settings.exchange, secrets, clock, default_urls=LIVE)
    await client.start()                       # time sync + exchangeInfo (rules, rate limits)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(client.maintain())      # periodic server-time refresh
        async for event in client.market_stream(["BTCUSDT"], [Timeframe.M1]): ...
    await client.close()

Paper mode (the connector against the simulated Binance, ``exchanges/sim``) — the clock::

    server = SimServer(venue, speed=60.0)       # or `python main.py sim --speed 60` elsewhere
    await server.start()                        # start() creates the sim's ScaledClock: build after it
    client = BinanceFutures(BinanceUrls(rest=server.rest_url, ws=server.ws_url),
                            clock=server.clock, settings=..., secrets=Secrets(server.api_key, server.api_secret))

The engine must run on the SAME clock as the venue (``server.clock``: a ``ScaledClock`` at the
speed factor, or the ``FakeClock`` of a manually stepped sim). Then the server-time offset is ~0
and stays so, every sleep (backoff, keepalive, breaker open time) lasts simulated seconds, and
24 h rotation, windows and bans line up with the venue. For a sim in another process, build a
``ScaledClock`` with the sim's start time and speed. If the connector gets a wall clock anyway,
``TimeSync`` notices a server clock running faster than ours after two agreeing resyncs (each
prompted by one -1021 and answered by one retry) and then stamps requests at that rate; the
sim tolerates the stamps of either clock (its recvWindow is stretched by the speed factor).
With a manually stepped sim the connector's sleeps wait for the stepper: nudge the clock.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

from config.secrets import Secrets
from config.settings import ExchangeSettings
from core.errors import ExchangeError
from core.events import MarketEvent, UserEvent
from core.ports import Clock
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
from exchanges.binance import schemas
from exchanges.binance.breaker import BreakerBoard, BreakerState
from exchanges.binance.http import BinanceHttp
from exchanges.binance.limits import Lane, RateLimiter
from exchanges.binance.rest import KLINES_MAX, BinanceRest
from exchanges.binance.signing import Ed25519Signer, HmacSigner, Signer
from exchanges.binance.streams import Connect, MarketStream, UserStream, default_connect
from exchanges.binance.urls import LIVE, BinanceUrls, resolve_urls

log = logging.getLogger(__name__)


def signer_from(secrets: Secrets | None) -> Signer | None:
    """Ed25519 when a key file is configured, else HMAC with the secret, else None (market data only)."""
    if secrets is None or not secrets.api_key:
        return None
    if secrets.ed25519_key_file is not None:
        return Ed25519Signer.from_file(secrets.ed25519_key_file)
    if secrets.api_secret:
        return HmacSigner(secrets.api_secret)
    return None


class BinanceFutures:
    """ExchangePort implementation for Binance USD-M perpetual futures (one-way mode)."""

    def __init__(
        self,
        urls: BinanceUrls,
        *,
        clock: Clock,
        settings: ExchangeSettings,
        secrets: Secrets | None = None,
        connect: Connect = default_connect,
        rng: random.Random | None = None,
    ) -> None:
        self.urls = urls
        self.clock = clock
        self.settings = settings
        self._rng = rng or random.Random()
        self._connect = connect
        signer = signer_from(secrets)
        api_key = secrets.api_key if secrets else None
        limiter = RateLimiter(clock, reserve_fraction=settings.rate_limit_reserve_fraction)
        self.breakers = BreakerBoard(settings.breaker, clock)
        self.http = BinanceHttp(urls, clock=clock, settings=settings, api_key=api_key, signer=signer,
                                limiter=limiter, breakers=self.breakers, rng=self._rng)
        self.rest = BinanceRest(self.http)
        # API-key permissions are only served by the spot host ([exchange] spot_rest_url);
        # without it the preflight check is skipped, not passed.
        self.spot_rest: BinanceRest | None = None
        if settings.spot_rest_url:
            spot = BinanceHttp(BinanceUrls(rest=settings.spot_rest_url, ws=urls.ws), clock=clock, settings=settings,
                               api_key=api_key, signer=signer, rng=self._rng)
            self.spot_rest = BinanceRest(spot)
        self._rules: dict[str, SymbolRules] = {}

    @classmethod
    def from_settings(
        cls, settings: ExchangeSettings, secrets: Secrets | None, clock: Clock, *,
        default_urls: BinanceUrls = LIVE, **kwargs: Any,
    ) -> BinanceFutures:
        """Base URLs from [exchange] rest_url / stream_url, else ``default_urls``."""
        return cls(resolve_urls(settings.rest_url, settings.stream_url, default=default_urls),
                   clock=clock, settings=settings, secrets=secrets, **kwargs)

    @property
    def limiter(self) -> RateLimiter:
        return self.http.limiter

    def breaker_states(self) -> dict[str, BreakerState]:
        """Per endpoint group; the risk gate and metrics read this."""
        return self.breakers.states()

    async def start(self) -> None:
        """Measure the server-time offset and load exchangeInfo (symbol rules, rate limits)."""
        await self.http.time_sync.sync()
        await self._load_exchange_info()

    async def maintain(self) -> None:
        """Run forever: periodic server-time refresh (put it in the engine's TaskGroup)."""
        await self.http.time_sync.run()

    async def _load_exchange_info(self) -> None:
        rules, limits = await self.rest.exchange_info()
        self._rules = rules
        if limits:
            self.http.limiter.configure(limits)

    async def _rules_for(self, symbol: str) -> SymbolRules:
        if symbol not in self._rules:
            await self._load_exchange_info()
        try:
            return self._rules[symbol]
        except KeyError:
            raise ExchangeError(f"{symbol} is not listed in exchangeInfo", endpoint="/fapi/v1/exchangeInfo") from None

    # -- reference data ------------------------------------------------------------------

    async def server_time_ms(self) -> int:
        return await self.rest.server_time()

    async def symbol_rules(self, symbols: Sequence[str] | None = None) -> dict[str, SymbolRules]:
        await self._load_exchange_info()
        if symbols is None:
            return dict(self._rules)
        missing = [s for s in symbols if s not in self._rules]
        if missing:
            raise ExchangeError(f"not listed in exchangeInfo: {', '.join(missing)}", endpoint="/fapi/v1/exchangeInfo")
        return {s: self._rules[s] for s in symbols}

    async def klines(
        self, symbol: str, timeframe: Timeframe, *, start_ms: int | None = None,
        end_ms: int | None = None, limit: int = 500,
    ) -> list[Candle]:
        """Closed candles only, oldest first; pages of ≤1500 rows.

        Without ``end_ms`` the request ends at the last closed bar, so ``limit`` closed bars come
        back (Binance's newest row would otherwise be the bar in progress, dropped below).
        """
        now = self.http.time_sync.timestamp_ms()
        if end_ms is None:
            end_ms = timeframe.bucket_start(now) - 1
        if start_ms is None and limit > KLINES_MAX:
            start_ms = timeframe.bucket_start(end_ms) - (limit - 1) * timeframe.ms
        out: list[Candle] = []
        start = start_ms
        while len(out) < limit:
            want = min(KLINES_MAX, limit - len(out))
            page = await self.rest.klines(symbol, timeframe, start_ms=start, end_ms=end_ms, limit=want)
            out += page
            if len(page) < want or start is None:
                break
            start = page[-1].open_time_ms + timeframe.ms
            if end_ms is not None and start > end_ms:
                break
        # The newest row may be the bar still in progress.
        return [c for c in out if c.close_time_ms < now]

    async def _backfill_klines(self, symbol: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> list[Candle]:
        bars = (end_ms - start_ms) // timeframe.ms + 1
        return await self.klines(symbol, timeframe, start_ms=start_ms, end_ms=end_ms, limit=max(1, bars))

    async def mark_price(self, symbol: str) -> MarkPrice:
        return await self.rest.premium_index(symbol)

    async def funding_rates(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 100
    ) -> list[FundingRate]:
        return await self.rest.funding_rate(symbol, start_ms=start_ms, end_ms=end_ms, limit=limit)

    async def commission_rate(self, symbol: str) -> CommissionRate:
        return await self.rest.commission_rate(symbol)

    # -- regular orders --------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Reduce-only orders (flatten, exits) travel in the protective lane; entries behind them."""
        rules = await self._rules_for(request.symbol)
        lane = Lane.PROTECT if request.reduce_only else Lane.ENTRY
        return await self.rest.new_order(schemas.order_params(request, rules), client_id=request.client_order_id,
                                         lane=lane)

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        return await self.rest.cancel_order(symbol, order_id=order_id, client_order_id=client_order_id)

    async def query_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        return await self.rest.query_order(symbol, order_id=order_id, client_order_id=client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        return await self.rest.open_orders(symbol)

    async def cancel_all_orders(self, symbol: str) -> None:
        await self.rest.cancel_all_orders(symbol)

    # -- algo orders -------------------------------------------------------------------------

    async def place_algo_order(self, request: AlgoOrderRequest) -> AlgoOrder:
        """Stops and take-profits are protection: always the first lane."""
        rules = await self._rules_for(request.symbol)
        return await self.rest.new_algo_order(schemas.algo_params(request, rules),
                                              client_id=request.client_algo_id, lane=Lane.PROTECT)

    async def cancel_algo_order(
        self, symbol: str, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> None:
        await self.rest.cancel_algo_order(algo_id=algo_id, client_algo_id=client_algo_id)

    async def query_algo_order(
        self, symbol: str, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> AlgoOrder:
        return await self.rest.query_algo_order(algo_id=algo_id, client_algo_id=client_algo_id)

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return await self.rest.open_algo_orders(symbol)

    async def cancel_all_algo_orders(self, symbol: str) -> None:
        await self.rest.cancel_all_algo_orders(symbol)

    # -- account ---------------------------------------------------------------------------------

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """positionRisk v3, completed with leverage and margin type from symbolConfig."""
        positions = await self.rest.position_risk(symbol)
        if not positions:
            return positions
        configs = {c["symbol"]: c for c in await self.rest.symbol_config(symbol)}
        out = []
        for p in positions:
            cfg = configs.get(p.symbol)
            if cfg is not None and p.leverage is None:
                merged = schemas.position({"symbol": p.symbol, "positionAmt": "0", **cfg})
                p = dataclasses.replace(p, leverage=merged.leverage, margin_type=merged.margin_type)
            out.append(p)
        return out

    async def balances(self) -> list[Balance]:
        return await self.rest.balances()

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        return await self.rest.set_leverage(symbol, leverage)

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        await self.rest.set_margin_type(symbol, margin_type)

    async def get_position_mode(self) -> bool:
        return await self.rest.get_position_mode()

    async def set_position_mode(self, dual_side: bool) -> None:
        await self.rest.set_position_mode(dual_side)

    async def user_trades(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 500
    ) -> list[Fill]:
        return await self.rest.user_trades(symbol, start_ms=start_ms, end_ms=end_ms, limit=limit)

    async def income(
        self, *, symbol: str | None = None, income_type: str | None = None, start_ms: int | None = None,
        end_ms: int | None = None, limit: int = 1000,
    ) -> list[Income]:
        return await self.rest.income(symbol=symbol, income_type=income_type, start_ms=start_ms,
                                      end_ms=end_ms, limit=limit)

    # -- streams ----------------------------------------------------------------------------------

    def market_stream(
        self, symbols: Sequence[str], timeframes: Sequence[Timeframe], *, mark_price: bool = True
    ) -> AsyncIterator[MarketEvent]:
        stream = MarketStream(self.urls, clock=self.clock, settings=self.settings,
                              fetch_klines=self._backfill_klines, connect=self._connect, rng=self._rng,
                              server_now_ms=self.http.time_sync.timestamp_ms)
        return stream.events(symbols, timeframes, mark_price=mark_price)

    def user_stream(self) -> AsyncIterator[UserEvent]:
        stream = UserStream(self.urls, clock=self.clock, settings=self.settings,
                            new_key=self.rest.new_listen_key, keepalive=self.rest.keepalive_listen_key,
                            connect=self._connect, rng=self._rng)
        return stream.events()

    async def close(self) -> None:
        await self.http.close()
        if self.spot_rest is not None:
            await self.spot_rest.http.close()
