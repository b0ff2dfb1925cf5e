"""Preflight: the structured go/no-go check before Casino trades on an account.

Exposed later as ``python main.py preflight``. Each check yields PASS, FAIL (with the reason in
plain words) or SKIP (the venue offers no way to check it here). Trading must not start unless
``PreflightResult.ok``. Checks: connectivity, clock offset, one-way position mode, single-asset
mode, API-key permissions (withdrawals), the algo endpoints answer (openAlgoOrders — the
2025-12-09 migration left bots unprotected), the configured symbols are TRADING, and the
/market websocket route delivers a kline within a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import websockets

from core.errors import ExchangeError
from core.types import Timeframe
from exchanges.binance.client import BinanceFutures
from exchanges.binance.frames import MarketDecoder
from exchanges.binance.urls import Route

log = logging.getLogger(__name__)


class Status(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True, slots=True)
class PreflightResult:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail}
                                          for c in self.checks]}


async def _check(name: str, fn: Callable[[], Awaitable[Check]]) -> Check:
    try:
        return await fn()
    except ExchangeError as exc:
        return Check(name, Status.FAIL, f"{type(exc).__name__}: {exc}")


async def preflight(
    client: BinanceFutures,
    symbols: Sequence[str],
    *,
    allow_withdrawals: bool | None = None,
    max_clock_offset_ms: int | None = None,
    kline_timeout_s: float = 90.0,
) -> PreflightResult:
    """Run every check (a failing one does not stop the others) and return them all.

    ``allow_withdrawals`` defaults to [exchange] allow_withdrawals; the clock limit to half of
    recvWindow; connectivity failing ends the run (nothing else could answer).
    """
    if allow_withdrawals is None:
        allow_withdrawals = client.settings.allow_withdrawals
    limit_ms = max_clock_offset_ms if max_clock_offset_ms is not None else client.settings.recv_window_ms // 2
    checks: list[Check] = []

    async def connectivity() -> Check:
        await client.rest.ping()
        return Check("connectivity", Status.PASS, f"{client.urls.rest} answers")

    async def clock() -> Check:
        offset = await client.http.time_sync.sync()
        if abs(offset) > limit_ms:
            return Check("clock_offset", Status.FAIL,
                         f"local clock is {offset} ms off the server (limit {limit_ms} ms): fix NTP")
        return Check("clock_offset", Status.PASS, f"offset {offset} ms")

    async def account_modes() -> Check:
        cfg = await client.rest.account_config()
        problems = []
        if cfg.get("dualSidePosition"):
            problems.append("account is in hedge (dual-side) mode; Casino needs one-way mode")
        if cfg.get("multiAssetsMargin"):
            problems.append("multi-assets margin is on; Casino needs single-asset mode")
        if cfg.get("canTrade") is False:
            problems.append("account cannot trade (canTrade=false)")
        if problems:
            return Check("account_modes", Status.FAIL, "; ".join(problems))
        return Check("account_modes", Status.PASS, "one-way, single-asset, can trade")

    async def permissions() -> Check:
        if client.spot_rest is None:
            return Check("api_key_permissions", Status.SKIP,
                         "key permissions are only served by the spot host (no spot_rest_url given)")
        restrictions = await client.spot_rest.api_restrictions()
        if restrictions.get("enableWithdrawals") and not allow_withdrawals:
            return Check("api_key_permissions", Status.FAIL,
                         "API key has withdrawals enabled; disable them or set exchange.allow_withdrawals")
        if not restrictions.get("enableFutures", True):
            return Check("api_key_permissions", Status.FAIL, "API key lacks futures permission")
        return Check("api_key_permissions", Status.PASS, "futures enabled, withdrawals disabled")

    async def algo() -> Check:
        open_algo = await client.rest.open_algo_orders(symbols[0] if symbols else None)
        return Check("algo_endpoints", Status.PASS, f"openAlgoOrders answers ({len(open_algo)} open)")

    async def listed() -> Check:
        rules, _ = await client.rest.exchange_info()
        bad = [f"{s} is not listed" if s not in rules else f"{s} is {rules[s].status}"
               for s in symbols if s not in rules or rules[s].status != "TRADING"]
        if bad:
            return Check("symbols_trading", Status.FAIL, "; ".join(bad))
        return Check("symbols_trading", Status.PASS, f"{len(symbols)} symbols TRADING")

    async def websocket() -> Check:
        if not symbols:
            return Check("market_stream", Status.SKIP, "no symbols configured")
        stream = f"{symbols[0].lower()}@kline_{Timeframe.M1.value}"
        url = client.urls.combined_stream(Route.MARKET, [stream])
        decoder = MarketDecoder("preflight")
        try:
            async with asyncio.timeout(kline_timeout_s):
                async with client._connect(url) as ws:  # noqa: SLF001 - the client's own transport
                    while True:
                        item = decoder.decode(await ws.recv())
                        if item is not None and hasattr(item, "timeframe"):
                            return Check("market_stream", Status.PASS, f"kline received on /market ({stream})")
        except TimeoutError:
            return Check("market_stream", Status.FAIL, f"no kline on /market within {kline_timeout_s:.0f} s")
        except (OSError, websockets.WebSocketException) as exc:
            return Check("market_stream", Status.FAIL, f"cannot open {url}: {exc}")

    for name, fn in (("connectivity", connectivity), ("clock_offset", clock), ("account_modes", account_modes),
                     ("api_key_permissions", permissions), ("algo_endpoints", algo),
                     ("symbols_trading", listed), ("market_stream", websocket)):
        checks.append(await _check(name, fn))
        if name == "connectivity" and checks[-1].status is Status.FAIL:
            break  # nothing else can answer
    result = PreflightResult(tuple(checks))
    for c in result.checks:
        log.info("preflight %-20s %s %s", c.name, c.status.value, c.detail)
    return result
