"""Market and user-data websocket streams: connection management, gap backfill, key upkeep.

Market: closed candles (``kline_<tf>``) and mark prices (``markPrice@1s``) on the /market
route, at most ``max_streams_per_connection`` streams per connection (streams are named in the
URL, so no SUBSCRIBE control messages are sent at all — far below Binance's 10/s). Each
connection reconnects with exponential backoff and full jitter, rotates proactively before
Binance's 24 h cut, and answers pings (the websockets library pongs automatically). Whenever a
closed candle is missing — after a reconnect, or a gap between two bars — the missed closed
candles are fetched over REST klines and emitted, oldest first, before anything newer; bars are
deduplicated by open time; if the backfill fails, a ``StreamGap`` says so explicitly.

User data: /private with a listenKey, kept alive every ``listen_key_keepalive_s``. On -1125
(key gone) or a ``listenKeyExpired`` event a new key is created and the stream reconnects; after
every reconnect a ``ReconcileNeeded`` is emitted, because events may have been lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import websockets

from config.settings import ExchangeSettings
from core.clock import LiveClock
from core.errors import ExchangeError, Rejected
from core.events import CandleClosed, MarketEvent, MarkPriceUpdate, ReconcileNeeded, StreamGap, UserEvent
from core.logs import register_secret
from core.metrics import BACKFILLED_CANDLES, STREAM_GAPS, WS_RECONNECTS, WS_STALENESS_SECONDS
from core.ports import Clock
from core.types import Candle, Timeframe
from exchanges.binance.frames import ListenKeyExpired, MarketDecoder, UserDecoder
from exchanges.binance.urls import BinanceUrls, Route

log = logging.getLogger(__name__)

FetchKlines = Callable[[str, Timeframe, int, int], Awaitable[list[Candle]]]
Connect = Callable[[str], Any]  # websockets.connect-compatible: async context manager → connection

INVALID_LISTEN_KEY = -1125
_QUEUE_DEPTH = 10_000
_REAL_TIME = LiveClock()  # receipt stamps are real time, whatever the session clock
_BACKOFF_BASE_S = 0.5


def default_connect(url: str) -> Any:
    """websockets client with keepalive pings (dead peers surface as ConnectionClosed)."""
    return websockets.connect(url, ping_interval=20, ping_timeout=20, max_size=2**22, open_timeout=10,
                              close_timeout=2)


def chunk(items: Sequence[str], size: int) -> list[list[str]]:
    """Split stream names into connections of at most ``size``."""
    if size < 1:
        raise ValueError("size must be ≥ 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class _Connected:
    """Marker the connection task puts on the queue after each (re)connect."""

    streams: tuple[str, ...]
    reconnect: bool


@dataclass(frozen=True, slots=True)
class _Received:
    """A closed candle and the real monotonic time its frame came off the socket."""

    candle: Candle
    at_s: float


@dataclass(frozen=True, slots=True)
class _Failed:
    """A producer died: the consumer re-raises ``error``."""

    error: BaseException


class _Backoff:
    def __init__(self, clock: Clock, max_delay_s: float, rng: random.Random) -> None:
        self._clock, self._max, self._rng = clock, max_delay_s, rng
        self.attempt = 0

    async def wait(self) -> None:
        self.attempt += 1
        delay = self._rng.uniform(0.0, min(self._max, _BACKOFF_BASE_S * 2 ** (self.attempt - 1)))
        await self._clock.sleep(delay)

    def reset(self) -> None:
        self.attempt = 0


async def _recv(ws: Any, timeout_s: float) -> Any:
    """Next frame, or None when ``timeout_s`` passed without one."""
    try:
        async with asyncio.timeout(timeout_s):
            return await ws.recv()
    except TimeoutError:
        return None


class MarketStream:
    """Closed candles and mark prices for ``symbols`` × ``timeframes``, gap-free."""

    def __init__(
        self,
        urls: BinanceUrls,
        *,
        clock: Clock,
        settings: ExchangeSettings,
        fetch_klines: FetchKlines,
        connect: Connect = default_connect,
        rng: random.Random | None = None,
        stale_after_s: float = 30.0,
        server_now_ms: Callable[[], int] | None = None,
    ) -> None:
        self._urls = urls
        self._clock = clock
        # Which bars have closed is the venue's business: its time, not ours (a skewed local
        # clock, or a simulator whose clock is not ours, would otherwise invent or hide bars).
        self._server_now_ms = server_now_ms or clock.now_ms
        self._s = settings
        self._fetch = fetch_klines
        self._connect = connect
        self._rng = rng or random.Random()
        self._stale_after_s = stale_after_s
        self._last_open: dict[tuple[str, Timeframe], int] = {}
        self.decoder = MarketDecoder("market")

    @staticmethod
    def stream_names(symbols: Sequence[str], timeframes: Sequence[Timeframe], mark_price: bool) -> list[str]:
        names = [f"{s.lower()}@kline_{tf.value}" for s in symbols for tf in timeframes]
        if mark_price:
            names += [f"{s.lower()}@markPrice@1s" for s in symbols]
        return names

    async def events(
        self, symbols: Sequence[str], timeframes: Sequence[Timeframe], *, mark_price: bool = True
    ) -> AsyncIterator[MarketEvent]:
        """Yield CandleClosed (live and backfilled), MarkPriceUpdate and StreamGap events."""
        queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_DEPTH)
        groups = chunk(self.stream_names(symbols, timeframes, mark_price), self._s.max_streams_per_connection)
        producer = asyncio.create_task(self._produce(groups, queue), name="binance-market-streams")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Connected):
                    if item.reconnect:
                        for event in await self._backfill_after_reconnect(item.streams):
                            yield event
                elif isinstance(item, _Received):
                    for event in await self._accept(item.candle, item.at_s):
                        yield event
                elif isinstance(item, MarkPriceUpdate):
                    yield item
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _produce(self, groups: list[list[str]], queue: asyncio.Queue[Any]) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for i, streams in enumerate(groups):
                    tg.create_task(self._connection(streams, queue), name=f"binance-market-{i}")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in a connection task must reach the consumer
            await queue.put(_Failed(exc))

    async def _connection(self, streams: list[str], queue: asyncio.Queue[Any]) -> None:
        url = self._urls.combined_stream(Route.MARKET, streams)
        label = "market"
        backoff = _Backoff(self._clock, self._s.ws_reconnect_max_delay_s, self._rng)
        connected_before = False
        while True:
            try:
                async with self._connect(url) as ws:
                    opened = self._clock.monotonic()
                    await queue.put(_Connected(tuple(streams), reconnect=connected_before))
                    connected_before = True
                    backoff.reset()
                    # Silence is a property of the socket: judged in real seconds even when the
                    # clock is a fast simulated one (whose frames come in bursts per pump).
                    loop = asyncio.get_running_loop()
                    last_frame = loop.time()
                    while self._clock.monotonic() - opened < self._s.ws_rotate_s:
                        raw = await _recv(ws, min(self._stale_after_s, 5.0))
                        now = loop.time()
                        if raw is None:
                            WS_STALENESS_SECONDS.labels(stream=label).set(now - last_frame)
                            if now - last_frame >= self._stale_after_s:
                                log.warning("market stream silent for %.0f s; reconnecting", now - last_frame)
                                break
                            continue
                        last_frame = now
                        item = self.decoder.decode(raw)
                        if isinstance(item, Candle):
                            if not item.closed:
                                continue  # only closed bars matter; in-progress updates are dropped here
                            # stamped here, before the queue: decision latency includes the wait in it
                            item = _Received(item, _REAL_TIME.monotonic())
                        if item is not None:
                            await queue.put(item)
                    else:
                        log.info("rotating market connection before Binance's 24 h limit")
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.warning("market stream connection lost: %s", exc)
            WS_RECONNECTS.labels(stream=label).inc()
            await backoff.wait()

    # -- gap handling -------------------------------------------------------------------

    async def _accept(self, candle: Candle, received_s: float = 0.0) -> list[MarketEvent]:
        """Emit ``candle`` after whatever closed bars are missing before it; drop duplicates."""
        key = (candle.symbol, candle.timeframe)
        last = self._last_open.get(key)
        if last is not None and candle.open_time_ms <= last:
            return []  # already emitted (duplicate or backfilled)
        events: list[MarketEvent] = []
        if last is not None and candle.open_time_ms > last + candle.timeframe.ms:
            events += await self._backfill(candle.symbol, candle.timeframe, last + candle.timeframe.ms,
                                           candle.open_time_ms - candle.timeframe.ms)
        events.append(CandleClosed(candle, received_ms=self._clock.now_ms(), received_s=received_s))
        self._last_open[key] = candle.open_time_ms
        return events

    async def _backfill_after_reconnect(self, streams: tuple[str, ...]) -> list[MarketEvent]:
        """After a reconnect, fetch every bar that closed since the last one emitted."""
        events: list[MarketEvent] = []
        now = self._server_now_ms()
        for (symbol, tf), last in list(self._last_open.items()):
            if f"{symbol.lower()}@kline_{tf.value}" not in streams:
                continue
            last_closed_open = now - now % tf.ms - tf.ms
            if last_closed_open > last:
                events += await self._backfill(symbol, tf, last + tf.ms, last_closed_open)
        return events

    async def _backfill(self, symbol: str, tf: Timeframe, from_open: int, to_open: int) -> list[MarketEvent]:
        """Closed bars with open time in [from_open, to_open], or a StreamGap if they cannot be had."""
        key = (symbol, tf)
        try:
            fetched = await self._fetch(symbol, tf, from_open, to_open + tf.ms - 1)
        except ExchangeError as exc:
            return self._gap(symbol, tf, from_open, to_open, f"backfill failed: {exc}")
        got = sorted((c for c in fetched if from_open <= c.open_time_ms <= to_open), key=lambda c: c.open_time_ms)
        events: list[MarketEvent] = []
        expected = from_open
        for candle in got:
            if candle.open_time_ms < expected:
                continue  # duplicate row
            if candle.open_time_ms > expected:
                events += self._gap(symbol, tf, expected, candle.open_time_ms - tf.ms, "missing from REST klines")
            events.append(CandleClosed(candle, received_ms=self._clock.now_ms(), backfilled=True))
            BACKFILLED_CANDLES.inc()
            self._last_open[key] = candle.open_time_ms
            expected = candle.open_time_ms + tf.ms
        if expected <= to_open:
            events += self._gap(symbol, tf, expected, to_open, "missing from REST klines")
        return events

    def _gap(self, symbol: str, tf: Timeframe, from_open: int, to_open: int, reason: str) -> list[MarketEvent]:
        STREAM_GAPS.inc()
        log.error("candle gap %s %s %d..%d: %s", symbol, tf.value, from_open, to_open, reason)
        self._last_open[(symbol, tf)] = max(self._last_open.get((symbol, tf), to_open), to_open)
        return [StreamGap(symbol, tf, from_open, to_open, reason)]


class UserStream:
    """User-data events on /private; renews the listenKey and asks for reconciliation."""

    def __init__(
        self,
        urls: BinanceUrls,
        *,
        clock: Clock,
        settings: ExchangeSettings,
        new_key: Callable[[], Awaitable[str]],
        keepalive: Callable[[], Awaitable[None]],
        connect: Connect = default_connect,
        rng: random.Random | None = None,
    ) -> None:
        self._urls = urls
        self._clock = clock
        self._s = settings
        self._new_key = new_key
        self._keepalive = keepalive
        self._connect = connect
        self._rng = rng or random.Random()
        self._key: str | None = None
        self._renew = asyncio.Event()
        self.decoder = UserDecoder("user")

    async def events(self) -> AsyncIterator[UserEvent]:
        queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_DEPTH)
        self._key = await self._fresh_key()
        producer = asyncio.create_task(self._produce(queue), name="binance-user-stream")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _fresh_key(self) -> str:
        key = await self._new_key()
        register_secret(key)  # a listenKey reads the account's events: keep it out of logs
        return key

    async def _produce(self, queue: asyncio.Queue[Any]) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._keepalive_loop(), name="binance-listenkey-keepalive")
                tg.create_task(self._connection(queue), name="binance-user-connection")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await queue.put(_Failed(exc))

    async def _keepalive_loop(self) -> None:
        while True:
            await self._clock.sleep(self._s.listen_key_keepalive_s)
            try:
                await self._keepalive()
            except Rejected as exc:
                if exc.code == INVALID_LISTEN_KEY:
                    log.warning("listenKey is gone (-1125); creating a new one")
                    self._renew.set()
                else:
                    log.warning("listenKey keepalive rejected (will retry next period): %s", exc)
            except ExchangeError as exc:
                log.warning("listenKey keepalive failed (will retry next period): %s", exc)

    async def _connection(self, queue: asyncio.Queue[Any]) -> None:
        backoff = _Backoff(self._clock, self._s.ws_reconnect_max_delay_s, self._rng)
        connected_before = False
        reason = "user stream reconnected"
        while True:
            try:
                if self._renew.is_set():
                    self._renew.clear()
                    self._key = await self._fresh_key()
                assert self._key is not None
                async with self._connect(self._urls.private_stream(self._key)) as ws:
                    opened = self._clock.monotonic()
                    if connected_before:
                        await queue.put(ReconcileNeeded(reason, self._clock.now_ms()))
                    connected_before = True
                    reason = "user stream reconnected"
                    backoff.reset()
                    while self._clock.monotonic() - opened < self._s.ws_rotate_s and not self._renew.is_set():
                        raw = await _recv(ws, 1.0)
                        if raw is None:
                            continue  # a quiet account is normal; keepalive pings guard the socket
                        item = self.decoder.decode(raw)
                        if isinstance(item, ListenKeyExpired):
                            log.warning("listenKey expired; renewing and reconciling")
                            reason = "listenKey expired"
                            self._renew.set()
                        elif item is not None:
                            await queue.put(item)
                if self._renew.is_set():
                    reason = "listenKey expired" if reason == "listenKey expired" else "listenKey renewed"
                    continue  # reconnect at once with a new key
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.warning("user stream connection lost: %s", exc)
            except ExchangeError as exc:
                log.warning("cannot renew listenKey: %s", exc)
            WS_RECONNECTS.labels(stream="user").inc()
            await backoff.wait()
