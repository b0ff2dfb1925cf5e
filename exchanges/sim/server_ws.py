"""Websocket side of the simulated Binance: /market, /public and /private routes.

* ``/market/ws/<stream>[/<stream>…]`` (raw frames) and ``/market/stream?streams=a/b`` (combined
  ``{"stream", "data"}`` frames) serve ``<sym>@kline_<interval>`` (in-progress updates and the
  closed bar with ``x: true``), ``<sym>@markPrice`` / ``@markPrice@1s`` and ``<sym>@aggTrade``.
* ``/public/ws/…`` and ``/public/stream?…`` serve ``<sym>@bookTicker``.
* A stream sent to the wrong route is acknowledged but never delivers (as Binance does).
* ``/private/ws?listenKey=…`` (or ``/private/ws/<listenKey>``, optional ``events=`` allow-list)
  pushes ORDER_TRADE_UPDATE, TRADE_LITE, ALGO_UPDATE, ACCOUNT_UPDATE, ACCOUNT_CONFIG_UPDATE and
  listenKeyExpired (after which the connection is closed).
* ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` answer ``{"result": …, "id": …}``.
* More than 10 incoming messages per second on a connection closes it (as Binance).
* The server pings every ``ping_interval_s`` (Binance: 3 min) and disconnects every connection
  24 hours of *simulated* time after it opened.

Each connection has a bounded outgoing queue drained by its own writer task; a client that
falls ``QUEUE_MAX`` frames behind is disconnected (Binance drops slow consumers too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

QUEUE_MAX = 10_000
MAX_INCOMING_PER_S = 10
DAY_MS = 86_400_000
MARKET_SUFFIXES = ("@kline_", "@markprice", "@aggtrade")
PUBLIC_SUFFIXES = ("@bookticker", "@depth")


def route_serves(route: str, stream: str) -> bool:
    """Does ``route`` (market/public) deliver ``stream``? Wrong route = silent."""
    s = stream.lower()
    if route == "market":
        return any(x in s for x in MARKET_SUFFIXES)
    if route == "public":
        return any(x in s for x in PUBLIC_SUFFIXES)
    return False


@dataclass(eq=False)
class Connection:
    route: str  # market | public | private
    combined: bool
    opened_sim_ms: int
    ws: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    listen_key: str | None = None
    events: frozenset[str] | None = None  # private allow-list
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def push(self, text: str) -> bool:
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            return False

    def close_soon(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class StreamHub:
    """All open websocket connections; the server publishes frames through it."""

    def __init__(self, *, ping_interval_s: float = 180.0) -> None:
        self.connections: set[Connection] = set()
        self.ping_interval_s = ping_interval_s

    # ------------------------------------------------------------------ publishing
    def publish_market(self, stream: str, payload: dict[str, Any]) -> None:
        key = stream.lower()
        raw: str | None = None
        combined: str | None = None
        for c in list(self.connections):
            if c.route == "private" or key not in c.streams or not route_serves(c.route, key):
                continue
            if c.combined:
                combined = combined or json.dumps({"stream": key, "data": payload}, separators=(",", ":"))
                text = combined
            else:
                raw = raw or json.dumps(payload, separators=(",", ":"))
                text = raw
            if not c.push(text):
                self._drop(c, "slow consumer")

    def wants(self, stream: str) -> bool:
        key = stream.lower()
        return any(key in c.streams for c in self.connections)

    def publish_user(self, listen_key: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        for c in list(self.connections):
            if c.route != "private" or c.listen_key != listen_key:
                continue
            if c.events is not None and payload.get("e") not in c.events:
                continue
            if not c.push(text):
                self._drop(c, "slow consumer")

    def expire_key(self, listen_key: str, now_ms: int) -> None:
        payload = {"e": "listenKeyExpired", "E": now_ms, "listenKey": listen_key}
        for c in list(self.connections):
            if c.route == "private" and c.listen_key == listen_key:
                if c.events is None or "listenKeyExpired" in c.events:
                    c.push(json.dumps(payload))
                c.close_soon()

    def drop_all(self) -> None:
        for c in list(self.connections):
            self._drop(c, "dropped by fault injection")

    def enforce_lifetime(self, now_sim_ms: int) -> None:
        for c in list(self.connections):
            if now_sim_ms - c.opened_sim_ms >= DAY_MS:
                c.close_soon()

    def _drop(self, c: Connection, why: str) -> None:
        log.info("closing %s websocket: %s", c.route, why)
        self.connections.discard(c)
        c.close_soon()

    # ------------------------------------------------------------------ serving
    async def serve(self, request: web.Request, conn_factory: Any) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn: Connection = conn_factory(ws)
        self.connections.add(conn)
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self._writer(conn))
                pinger = tg.create_task(self._pinger(conn))
                await self._reader(conn)
                writer.cancel()
                pinger.cancel()
        finally:
            self.connections.discard(conn)
            await ws.close()
        return ws

    async def _reader(self, conn: Connection) -> None:
        recent: deque[float] = deque()
        async for msg in conn.ws:
            # Binance: at most 10 incoming messages per second per connection, else disconnect.
            now = time.monotonic()
            recent.append(now)
            while recent and now - recent[0] > 1.0:
                recent.popleft()
            if len(recent) > MAX_INCOMING_PER_S:
                self._drop(conn, "more than 10 incoming messages per second")
                return
            if msg.type is not WSMsgType.TEXT:
                continue
            reply = self._control(conn, msg.data)
            if reply is not None and not conn.push(json.dumps(reply)):
                self._drop(conn, "slow consumer")

    def _control(self, conn: Connection, text: str) -> dict[str, Any] | None:
        try:
            msg = json.loads(text)
            method = msg["method"]
            ident = msg.get("id")
        except (ValueError, KeyError, TypeError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            conn.streams.update(str(p).lower() for p in params)
            return {"result": None, "id": ident}
        if method == "UNSUBSCRIBE":
            conn.streams.difference_update(str(p).lower() for p in params)
            return {"result": None, "id": ident}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": ident}
        return {"error": {"code": 1, "msg": f"Invalid request: unknown method {method!r}"}, "id": ident}

    async def _writer(self, conn: Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                await conn.ws.close()
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                return

    async def _pinger(self, conn: Connection) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(self.ping_interval_s)
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await conn.ws.ping()
