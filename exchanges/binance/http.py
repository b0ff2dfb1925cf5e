"""REST transport only: limit → breaker → sign → send → classify. No endpoint knowledge.

Reads that fail transiently (network, timeouts, 5xx, -1008) are retried with exponential
backoff and full jitter, bounded by [exchange.retry]. A write is retried only when it provably
never took effect (the connection was never established, or -1021 which Binance rejects before
matching). A write whose outcome is unknown (timeout or reset after sending, 503 "Unknown
error…", -1006, -1007) raises UnknownOutcome and is never resent: the caller queries by client id.
``asyncio.CancelledError`` is never caught here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
import orjson

from config.settings import ExchangeSettings
from core.errors import (
    Banned,
    CircuitOpen,
    ClockSkew,
    ExchangeError,
    RateLimited,
    Retryable,
    UnknownOutcome,
)
from core.metrics import API_ERRORS, API_REQUESTS, ORDER_EXECUTION_SECONDS
from core.ports import Clock
from exchanges.binance.breaker import BreakerBoard, CircuitBreaker
from exchanges.binance.errors import classify, parse_body
from exchanges.binance.limits import Cost, Lane, RateLimiter, cost_of
from exchanges.binance.signing import Signer, encode_params, signed_payload
from exchanges.binance.time_sync import TimeSync
from exchanges.binance.urls import BinanceUrls

log = logging.getLogger(__name__)

Params = Sequence[tuple[str, str]]


class Security(Enum):
    NONE = "NONE"  # market data
    USER_STREAM = "USER_STREAM"  # API key header, no signature (listenKey)
    SIGNED = "SIGNED"  # API key + timestamp + signature


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint as the transport needs to know it."""

    method: str
    path: str
    security: Security
    group: str  # circuit-breaker group: orders | account | market_data

    @property
    def is_write(self) -> bool:
        return self.method != "GET"


class NotSent(Retryable):
    """The request never left (no connection): safe to retry even for a write."""


TIME = Endpoint("GET", "/fapi/v1/time", Security.NONE, "market_data")


class BinanceHttp:
    """Sends one logical request, with the limiter, breakers, signing and error table applied."""

    def __init__(
        self,
        urls: BinanceUrls,
        *,
        clock: Clock,
        settings: ExchangeSettings,
        api_key: str | None = None,
        signer: Signer | None = None,
        limiter: RateLimiter | None = None,
        breakers: BreakerBoard | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.urls = urls
        self._clock = clock
        self._s = settings
        self._api_key = api_key
        self._signer = signer
        self.limiter = limiter or RateLimiter(clock)
        self.breakers = breakers or BreakerBoard(settings.breaker, clock)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self.time_sync = TimeSync(
            clock, self._server_time_ms, samples=settings.time_sync_samples,
            interval_s=settings.time_sync_interval_s,
        )

    @property
    def has_credentials(self) -> bool:
        return bool(self._api_key and self._signer)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "casino/0.1"},
                connector=aiohttp.TCPConnector(limit=32, enable_cleanup_closed=True),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _server_time_ms(self) -> int:
        data = await self.request(TIME)
        return int(data["serverTime"])

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base · 2^(attempt-1))]."""
        retry = self._s.retry
        return self._rng.uniform(0.0, min(retry.max_delay_s, retry.base_delay_s * 2 ** (attempt - 1)))

    async def request(
        self,
        endpoint: Endpoint,
        params: Params = (),
        *,
        lane: Lane = Lane.MARKET_DATA,
        protective: bool = False,
        client_id: str | None = None,
    ) -> Any:
        """Send with retries as the module docstring describes; returns the decoded JSON."""
        attempt = 0
        resynced = False
        while True:
            attempt += 1
            try:
                return await self._once(endpoint, params, lane, protective, client_id)
            except ClockSkew:
                # Binance checks the timestamp before matching: nothing happened, retry once.
                if resynced:
                    raise
                resynced = True
                log.warning("-1021 on %s: resyncing server time and retrying once", endpoint.path)
                await self.time_sync.sync()
            except (CircuitOpen, UnknownOutcome, Banned):
                raise
            except RateLimited:
                # The limiter now holds the pool until Retry-After; a read may wait for it.
                if endpoint.is_write or attempt >= self._s.retry.max_attempts:
                    raise
            except NotSent as exc:
                if attempt >= self._s.retry.max_attempts:
                    raise
                await self._pause(endpoint, attempt, exc)
            except Retryable as exc:
                if endpoint.is_write or attempt >= self._s.retry.max_attempts:
                    raise
                await self._pause(endpoint, attempt, exc)

    async def _pause(self, endpoint: Endpoint, attempt: int, exc: ExchangeError) -> None:
        delay = self.backoff_s(attempt)
        log.info("retrying %s %s in %.3f s after: %s", endpoint.method, endpoint.path, delay, exc)
        await self._clock.sleep(delay)

    def _payload(self, endpoint: Endpoint, params: Params) -> str:
        if endpoint.security is Security.SIGNED:
            if not self._signer:
                raise ExchangeError(f"{endpoint.path} needs API credentials", endpoint=endpoint.path)
            items = [*params, ("recvWindow", str(self._s.recv_window_ms)),
                     ("timestamp", str(self.time_sync.timestamp_ms()))]
            return signed_payload(items, self._signer)
        return encode_params(params)

    async def _once(
        self, endpoint: Endpoint, params: Params, lane: Lane, protective: bool, client_id: str | None
    ) -> Any:
        cost: Cost = cost_of(endpoint.method, endpoint.path, dict(params))
        await self.limiter.acquire(cost, lane)
        breaker = self.breakers[endpoint.group]
        counted = breaker.admit(protective=protective)
        payload = self._payload(endpoint, params)
        headers: dict[str, str] = {}
        if endpoint.security is not Security.NONE:
            if not self._api_key:
                raise ExchangeError(f"{endpoint.path} needs an API key", endpoint=endpoint.path)
            headers["X-MBX-APIKEY"] = self._api_key
        url = f"{self.urls.rest}{endpoint.path}"
        data: bytes | None = None
        if endpoint.method in ("GET", "DELETE"):
            if payload:
                url = f"{url}?{payload}"
        else:
            data = payload.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        API_REQUESTS.labels(endpoint=endpoint.path).inc()
        sent_ms = self._clock.now_ms()
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self._s.request_timeout_s):
                async with self._session_now().request(
                    endpoint.method, url, data=data, headers=headers
                ) as resp:
                    status = resp.status
                    body = await resp.read()
                    resp_headers = dict(resp.headers)
        except aiohttp.ClientConnectorError as exc:
            self._failed(breaker, counted, endpoint, "connect")
            raise NotSent(f"cannot connect to {self.urls.rest}: {exc}", endpoint=endpoint.path) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Binance: for a write the outcome is unknown.
            self._failed(breaker, counted, endpoint, "timeout" if isinstance(exc, TimeoutError) else "network")
            what = f"{type(exc).__name__} after sending {endpoint.method} {endpoint.path}: {exc}"
            if endpoint.is_write:
                raise UnknownOutcome(what, client_id=client_id, endpoint=endpoint.path) from exc
            raise Retryable(what, endpoint=endpoint.path) from exc
        if endpoint.is_write and endpoint.group == "orders":
            ORDER_EXECUTION_SECONDS.labels(kind=endpoint.path.rsplit("/", 1)[-1]).observe(
                max(0.0, self._clock.monotonic() - started)
            )
        self.limiter.observe_headers(resp_headers, sent_ms=sent_ms)
        if 200 <= status < 300:
            if counted:
                breaker.record_success()
            try:
                return orjson.loads(body) if body else {}
            except orjson.JSONDecodeError as exc:
                self._failed(breaker, counted, endpoint, "bad_json")
                text = body[:200].decode("utf-8", "replace")
                if endpoint.is_write:
                    raise UnknownOutcome(f"unreadable answer: {text!r}", client_id=client_id,
                                         endpoint=endpoint.path) from exc
                raise Retryable(f"unreadable answer: {text!r}", endpoint=endpoint.path) from exc
        error = classify(status, body, resp_headers, endpoint=endpoint.path, is_write=endpoint.is_write,
                         now_ms=self.time_sync.timestamp_ms(), client_id=client_id)
        # Label by Binance's code when the body has one (-1021, -2019 …), else by HTTP status;
        # 429 and 418 share code -1003, so their status tells them apart.
        code = None if status in (418, 429) else parse_body(body)[0]
        API_ERRORS.labels(endpoint=endpoint.path, code=str(code if code is not None else status)).inc()
        if isinstance(error, Banned):
            # Binance states the ban's end in its own time; the limiter waits on ours.
            self.limiter.ban(self.time_sync.to_local_ms(error.until_ms))
        elif isinstance(error, RateLimited):
            self.limiter.block(cost, error.retry_after_s if error.retry_after_s >= 0 else None)
        if counted:
            transport_failure = isinstance(error, UnknownOutcome) or (
                isinstance(error, Retryable) and not isinstance(error, (RateLimited, ClockSkew))
            )
            if transport_failure:
                breaker.record_failure()
            else:
                breaker.record_success()  # the venue answered definitively: it is healthy
        raise error

    def _failed(self, breaker: CircuitBreaker, counted: bool, endpoint: Endpoint, code: str) -> None:
        API_ERRORS.labels(endpoint=endpoint.path, code=code).inc()
        if counted:
            breaker.record_failure()


def query_string(params: Mapping[str, str]) -> Params:
    """Drop None values and keep insertion order (the order the signature covers)."""
    return [(k, v) for k, v in params.items() if v is not None]
