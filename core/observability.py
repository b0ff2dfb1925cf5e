"""The session's HTTP face for operators: /metrics, /health, /ready and /status.

Served by aiohttp inside the engine's event loop, on loopback unless the configuration
explicitly allows otherwise (``metrics.allow_non_loopback``). ``/health`` answering at all
proves the loop is alive; ``/ready`` is 200 only after preflight and reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.clock import LiveClock
from core.metrics import LOOP_LAG_SECONDS, REGISTRY

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Mapping[str, Any]]


class ObservabilityServer:
    """Serves the Prometheus registry and the engine's status on ``host:port``."""

    def __init__(self, host: str, port: int, *, status: StatusProvider, ready: Callable[[], bool]) -> None:
        self._host = host
        self._port = port
        self._status = status
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready_handler)
        app.router.add_get("/status", self._status_handler)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - aiohttp exposes no getter
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("metrics on http://%s:%s/metrics", self._host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready_handler(self, _: web.Request) -> web.Response:
        ready = self._ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def _status_handler(self, _: web.Request) -> web.Response:
        body = orjson.dumps(dict(self._status()), default=str, option=orjson.OPT_INDENT_2)
        return web.Response(body=body, content_type="application/json")


async def measure_loop_lag(interval_s: float = 0.5) -> None:
    """Forever: how late the loop wakes a sleeper, into casino_event_loop_lag_seconds.

    Always on the real clock, even in a replay: lag is a property of this process's loop,
    not of the simulated market.
    """
    clock = LiveClock()
    while True:
        start = clock.monotonic()
        await asyncio.sleep(interval_s)
        LOOP_LAG_SECONDS.observe(max(0.0, clock.monotonic() - start - interval_s))
