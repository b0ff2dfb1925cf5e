"""The simulated Binance USDⓈ-M futures exchange over HTTP and websockets on loopback.

Usage::

    venue = Venue.from_folder(data_dir / "futures-2023", ["BTCUSDT", "ETHUSDT"])
    server = SimServer(venue, api_key="k", api_secret="s", speed=None)   # None = manual clock
    await server.start()             # server.rest_url, server.ws_url
    await server.advance(60)         # manual clock: play one simulated minute
    server.faults.fail("/fapi/v1/order", status="-1008")
    await server.stop()

``speed`` > 0 runs simulated time at that multiple of real time (paper sessions); ``None``
leaves time to ``advance`` (tests, stepped replays). Every request first brings the venue
up to the clock, so REST, websockets and matching agree on the simulated time.
The transport order per request: ban/429 → rate limit (weights, order counts) → injected
failures → authentication → handler → events to websockets → injected lost/late answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from core.clock import FakeClock, ScaledClock
from core.types import Candle, Timeframe
from exchanges.sim import render
from exchanges.sim.auth import ApiKey, KeyRing, check_timestamp, ed25519_key, verify_signature
from exchanges.sim.errors import MESSAGES, SimError
from exchanges.sim.feed import kline_rows
from exchanges.sim.faults import UNKNOWN_503_MSG, Faults
from exchanges.sim.limits import RateLimiter
from exchanges.sim.records import AccountEvent, AlgoEvent, ConfigEvent, MarginCallEvent, OrderEvent, SimEvent
from exchanges.sim.rest import Security, SimContext
from exchanges.sim.routes import ROUTES, Route
from exchanges.sim.server_ws import Connection, StreamHub
from exchanges.sim.venue import KlineTick, MarketTick, MarkTick, TradeTick, Venue

log = logging.getLogger(__name__)

PUMP_INTERVAL_S = 0.05
KLINE_INTERVALS = [tf for tf in Timeframe]


class SimServer:
    """aiohttp application serving the venue with Binance's REST paths and WS routes."""

    def __init__(
        self, venue: Venue, *, api_key: str | None = None, api_secret: str | None = None,
        ed25519_keys: dict[str, bytes] | None = None, speed: float | None = None,
        host: str = "127.0.0.1", port: int = 0, admin: bool = False, limiter: RateLimiter | None = None,
        ping_interval_s: float = 180.0, hold_clock: bool = False,
    ) -> None:
        """``hold_clock``: with a ``speed``, simulated time stands still at the start until
        ``start_clock_on_next_kline_subscriber()`` was called and then a websocket asking for 1m
        klines connects. A paper session on recorded data uses it: its preflight and warm-up take
        real seconds that must not play bars nobody watches, so it decides on the same bars as
        a replay of the same data."""
        self.venue = venue
        self.hold_clock = hold_clock
        self._release_armed = False
        self.api_key = api_key or secrets.token_hex(32)
        self.api_secret = api_secret or secrets.token_hex(32)
        self.keys = KeyRing()
        self.keys.add(ApiKey(self.api_key, secret=self.api_secret))
        for key, pem in (ed25519_keys or {}).items():
            self.keys.add(ApiKey(key, public_key=ed25519_key(pem)))
        self.speed = speed
        self.clock: FakeClock | ScaledClock = (
            ScaledClock(venue.now_ms, speed) if speed else FakeClock(venue.now_ms))
        self.faults = Faults()
        # Windows and bans run on the venue's clock (a given limiter too): "banned until T" must
        # be a time in the same domain as /fapi/v1/time, as on Binance, and the windows must roll
        # when the client's (which runs on the same clock in paper mode) do.
        self.limiter = limiter or RateLimiter()
        self.limiter.now_ms = self.now_ms_live
        self.hub = StreamHub(ping_interval_s=ping_interval_s)
        self.ctx = SimContext(venue, self.faults, rate_limits=(
            self.limiter.weight_limit, self.limiter.orders_1m_limit, self.limiter.orders_10s_limit))
        self.host, self.port = host, port
        self.admin = admin
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self._book_id = 0
        self._data_ended = False
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.speed:
            # Simulated time starts running now, not when the object was built.
            self.clock = ScaledClock(self.venue.now_ms, self.speed, held=self.hold_clock)
            self._pump = asyncio.create_task(self._pump_loop(), name="sim-clock-pump")

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # our caller is being cancelled too: never swallow that
            self._pump = None
        self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_clock_on_next_kline_subscriber(self) -> None:
        """A held clock starts when the next websocket subscribing 1m klines connects (a
        preflight's test connection came earlier and must not start it)."""
        if isinstance(self.clock, ScaledClock) and self.clock.held:
            self._release_armed = True

    async def advance(self, seconds: float) -> None:
        """Manual clock only: move simulated time forward and publish what happened."""
        if not isinstance(self.clock, FakeClock):
            raise RuntimeError("advance() needs the manual clock (speed=None)")
        self.clock.set_ms(self.clock.now_ms() + round(seconds * 1000))
        self.sync()
        await asyncio.sleep(0)

    async def _pump_loop(self) -> None:
        while True:
            self.sync()
            await asyncio.sleep(self._pump_delay_s())

    def _pump_delay_s(self) -> float:
        """Wake at the next path point (at most PUMP_INTERVAL_S away): at a high speed a fixed
        period would publish a closed bar late by up to the period times the speed — long
        enough, at 300×, for the next bar's path to move on before the client can react."""
        clock = self.clock
        nxt = self.venue.next_point_ms()
        if nxt is None or not isinstance(clock, ScaledClock) or clock.held:
            return PUMP_INTERVAL_S
        return min(PUMP_INTERVAL_S, max(0.0, (nxt - clock.now_ms()) / 1000 / clock.speed) + 0.0005)

    def now_ms(self) -> int:
        """The simulated time clients see (with any injected skew)."""
        return self.venue.now_ms + self.faults.clock_skew_ms

    def now_ms_live(self) -> int:
        """The clock's time with any injected skew, before the venue has caught up with it."""
        return self.clock.now_ms() + self.faults.clock_skew_ms

    # ------------------------------------------------------------------ time → events

    def sync(self) -> None:
        """Bring the venue up to the clock and publish every event to the websockets."""
        self.venue.engine.split_fills = self.faults.split_fills
        if self.faults.drop_ws_requested:
            self.faults.drop_ws_requested = 0
            self.hub.drop_all()
        target = self.clock.now_ms()
        if target > self.venue.now_ms:
            events, ticks = self.venue.advance_to(target)
            self._publish_user(events)
            self._publish_market(ticks)
        self._check_listen_key()
        self.hub.enforce_lifetime(self.venue.now_ms)
        if self.venue.now_ms > self.venue.end_ms and not self._data_ended:
            self._data_ended = True
            log.warning("recorded data ends at %d: prices stay frozen from here on", self.venue.end_ms)

    def _check_listen_key(self) -> None:
        ctx = self.ctx
        expired = ctx.listen_key is not None and (
            self.faults.expire_key_requested or ctx.now_ms >= ctx.listen_key_expiry_ms)
        if expired:
            assert ctx.listen_key is not None
            self.faults.expire_key_requested = 0
            self.hub.expire_key(ctx.listen_key, ctx.now_ms)
            ctx.listen_key = None
            ctx.listen_key_expiry_ms = 0

    def _publish_user(self, events: list[SimEvent]) -> None:
        key = self.ctx.listen_key
        if key is None or not self.ctx.now_ms < self.ctx.listen_key_expiry_ms:
            return
        for ev in events:
            if isinstance(ev, OrderEvent):
                spec = self.venue.specs[ev.order.symbol]
                if ev.trade is not None:
                    self.hub.publish_user(key, render.trade_lite(spec, ev))
                self.hub.publish_user(key, render.order_trade_update(spec, ev))
            elif isinstance(ev, AlgoEvent):
                self.hub.publish_user(key, render.algo_update(self.venue.specs[ev.algo.symbol], ev))
            elif isinstance(ev, AccountEvent):
                self.hub.publish_user(key, render.account_update(ev))
            elif isinstance(ev, MarginCallEvent):
                self.hub.publish_user(key, render.margin_call(ev))
            elif isinstance(ev, ConfigEvent):
                self.hub.publish_user(key, {"e": "ACCOUNT_CONFIG_UPDATE", "E": ev.time_ms, "T": ev.time_ms,
                                            "ac": {"s": ev.symbol, "l": ev.leverage}})

    def _publish_market(self, ticks: list[MarketTick]) -> None:
        hub = self.hub
        if not hub.connections:
            return
        for t in ticks:
            if isinstance(t, KlineTick):
                sym = t.candle.symbol.lower()
                for tf in KLINE_INTERVALS:
                    stream = f"{sym}@kline_{tf.value}"
                    if not hub.wants(stream):
                        continue
                    candle = t.candle if tf is Timeframe.M1 else self._tf_candle(t, tf)
                    if candle is not None:
                        hub.publish_market(stream, render.kline_event(
                            self.venue.specs[candle.symbol], candle, t.time_ms, t.first_trade_id, t.last_trade_id))
            elif isinstance(t, MarkTick):
                payload = render.mark_price_event(t.symbol, t.mark, t.funding_rate, t.next_funding_ms, t.time_ms)
                sym = t.symbol.lower()
                hub.publish_market(f"{sym}@markprice", payload)
                hub.publish_market(f"{sym}@markprice@1s", payload)
                self._book_id += 1
                hub.publish_market(f"{sym}@bookticker", render.book_ticker_event(t.symbol, t.mark, self._book_id, t.time_ms))
            elif isinstance(t, TradeTick):
                hub.publish_market(f"{t.symbol.lower()}@aggtrade", render.agg_trade_event(
                    t.symbol, t.agg_id, t.price, t.qty, t.buyer_maker, t.time_ms))

    def _publish_latest_klines(self, streams: list[str]) -> None:
        for stream in streams:
            symbol = stream.partition("@")[0].upper()
            if symbol not in self.venue.data:
                continue
            rows = kline_rows(self.venue.data[symbol], Timeframe.M1, now_ms=self.venue.now_ms + 1,
                              start_ms=None, end_ms=None, limit=1)
            for candle in rows:
                self.hub.publish_market(stream, render.kline_event(
                    self.venue.specs[symbol], candle, self.venue.now_ms, self._book_id, self._book_id))

    def _tf_candle(self, t: KlineTick, tf: Timeframe) -> Candle | None:
        """The ``tf`` kline as of this 1m tick: in progress, or closed when the tick closes the bucket."""
        if t.candle.closed and (t.candle.open_time_ms + 60_000) % tf.ms != 0:
            return None  # a 1m bar closed inside the bucket: the next update comes with the next tick
        return self.venue.aggregate(t.candle, tf)

    # ------------------------------------------------------------------ HTTP

    def _build_app(self) -> web.Application:
        app = web.Application()
        for route in ROUTES:
            app.router.add_route(route.method, route.path, self._make_handler(route))
        for prefix in ("market", "public"):
            app.router.add_get(f"/{prefix}/ws", self._ws_handler(prefix, combined=False))
            app.router.add_get(f"/{prefix}/ws/{{streams:.*}}", self._ws_handler(prefix, combined=False))
            app.router.add_get(f"/{prefix}/stream", self._ws_handler(prefix, combined=True))
        app.router.add_get("/private/ws", self._private_handler)
        app.router.add_get("/private/ws/{key}", self._private_handler)
        if self.admin:
            app.router.add_post("/sim/admin/fault", self._admin)
            app.router.add_post("/sim/admin/advance", self._admin_advance)
        return app

    def _make_handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, route)
        return handler

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        headers: dict[str, str] = {}
        try:
            if self.faults.ban_seconds:
                self.limiter.ban(int(self.faults.ban_seconds * 1000))
                self.faults.ban_seconds = 0
            self.limiter.check_ban()
            if self.faults.force_429 > 0:
                self.faults.force_429 -= 1
                raise self.limiter.too_many()
            body = await request.text() if request.can_read_body else ""
            query = request.rel_url.raw_query_string  # as sent: the signature covers the raw text
            params = dict(parse_qsl(body, keep_blank_values=True))
            params.update(parse_qsl(query, keep_blank_values=True))  # query wins over body
            self.limiter.charge(route.weight(params), route.orders)
            headers.update(self.limiter.headers(orders=route.orders > 0))
            self.sync()  # the venue catches up with the clock before time is checked or state read
            exempt = params.get("reduceOnly") == "true" or params.get("closePosition") == "true"
            failure = self.faults.take("fail", route.method, route.path, reduce_only=exempt)
            if failure is not None:
                raise _failure(failure.mode)
            if route.security is not Security.NONE:
                key = self.keys.lookup(request.headers.get("X-MBX-APIKEY"))
                if route.security is Security.SIGNED:
                    verify_signature(key, query, body)
                    check_timestamp(params, ((self.now_ms(), self.speed or 1.0),
                                             (time.time_ns() // 1_000_000 + self.faults.clock_skew_ms, 1.0)))
            result = route.handler(self.ctx, params)
            self.sync_events()
            lost = self.faults.take("lose", route.method, route.path)
            if lost is not None:
                return await self._lost(request, lost.mode, lost.delay_s, headers)
            late = self.faults.take("delay", route.method, route.path)
            if late is not None:
                await asyncio.sleep(late.delay_s)
            return web.json_response(result, headers=headers, dumps=_dumps)
        except SimError as exc:
            self.sync_events()
            if exc.retry_after_s is not None:
                headers["Retry-After"] = str(exc.retry_after_s)
            return web.json_response(exc.body(), status=exc.http_status, headers=headers, dumps=_dumps)

    def sync_events(self) -> None:
        """Publish what a request changed (orders, fills) at once."""
        events = self.venue.engine.drain()
        self._publish_user(events)

    async def _lost(self, request: web.Request, mode: str, delay_s: float, headers: dict[str, str]) -> web.StreamResponse:
        if mode == "503":
            return web.json_response({"code": -1000, "msg": UNKNOWN_503_MSG}, status=503, headers=headers)
        if mode == "-1007":
            return web.json_response({"code": -1007, "msg": MESSAGES[-1007]}, status=408, headers=headers)
        await asyncio.sleep(delay_s)  # "timeout": hold the answer, then drop the connection
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)

    # ------------------------------------------------------------------ websockets

    def _ws_handler(self, route: str, *, combined: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.sync()
            if combined:
                streams = request.query.get("streams", "")
            else:
                streams = request.match_info.get("streams", "")
            names = {s.lower() for s in streams.split("/") if s}

            def factory(ws: web.WebSocketResponse) -> Connection:
                conn = Connection(route, combined, self.venue.now_ms, ws, streams=names)
                klines = [n for n in names if n.endswith("@kline_1m")]
                if klines and isinstance(self.clock, ScaledClock) and self.clock.held:
                    if self._release_armed:
                        self._release_armed = False
                        self.clock.release()  # the subscriber is registered: no closed bar is missed
                    else:
                        # A frozen market still answers a subscriber (a preflight waiting for any
                        # kline) with its latest bar, as Binance pushes klines with no new trade;
                        # sent once the hub has registered this connection.
                        asyncio.get_running_loop().call_soon(self._publish_latest_klines, klines)
                return conn
            return await self.hub.serve(request, factory)
        return handler

    async def _private_handler(self, request: web.Request) -> web.StreamResponse:
        self.sync()
        key = request.match_info.get("key") or request.query.get("listenKey")
        if not key or key != self.ctx.listen_key:
            # Binance refuses the upgrade for an unknown key.
            return web.json_response({"code": -1125, "msg": MESSAGES[-1125]}, status=400)
        allow = request.query.get("events")
        events = frozenset(allow.split("/")) if allow else None

        def factory(ws: web.WebSocketResponse) -> Connection:
            return Connection("private", False, self.venue.now_ms, ws, listen_key=key, events=events)
        return await self.hub.serve(request, factory)

    # ------------------------------------------------------------------ admin

    async def _admin(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            self.faults.apply_admin(payload)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.sync()
        return web.json_response({"ok": True})

    async def _admin_advance(self, request: web.Request) -> web.StreamResponse:
        try:
            seconds = float((await request.json())["seconds"])
            await self.advance(seconds)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"now_ms": self.venue.now_ms})


def _failure(mode: str) -> SimError:
    if mode == "-1008":
        return SimError(-1008, MESSAGES[-1008], 503)
    messages = {"500": "Internal error; unable to process your request. Please try again.",
                "502": "Bad gateway.", "503": "Service Unavailable.", "504": "Gateway timeout."}
    return SimError(-1001 if mode != "503" else -1000, messages[mode], int(mode))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return render.num(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
