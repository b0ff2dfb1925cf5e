"""Rate limits: a declarative table of pools and endpoint weights, reconciled with Binance.

Pools are fixed windows like Binance's own counters (REQUEST_WEIGHT per minute per IP, ORDERS
per 10 s and per minute per account). Before a request is sent, ``acquire`` waits until every
pool it draws on has room; after the response, ``observe_headers`` replaces the local count by
the server's X-MBX-USED-WEIGHT-1M / X-MBX-ORDER-COUNT-10S/1M (case-insensitive, -1 ignored) plus
what is still in flight (``dispatched`` but not ``settled``: the server cannot have counted it
when it wrote this header), so a static weight table cannot drift away from the exchange's
count in either direction, and a burst of concurrent requests never talks the count down.

Priority lanes: protective orders (SL/TP/flatten) > cancels > entries > market data. A request
never overtakes an earlier-lane (or same-lane, earlier) waiter that draws on one of its pools, and
entries/market data may only use ``1 - reserve_fraction`` of a pool, so protection always finds
room. Requests on disjoint pools do not wait for each other (an order burst does not stall reads). 429 stops the pools the request drew on until Retry-After
(or the window end); 418 bans the whole client until the stated time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from core.errors import Banned
from core.metrics import BANNED, RATE_LIMIT_LIMIT, RATE_LIMIT_USED, RATE_LIMIT_WAIT_SECONDS
from core.ports import Clock
from core.types import RateLimitRule

log = logging.getLogger(__name__)


class Lane(IntEnum):
    """Priority of a request; lower value goes first."""

    PROTECT = 0  # stop-loss / take-profit placement, flatten
    CANCEL = 1
    ENTRY = 2
    MARKET_DATA = 3  # and other reads


_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_LETTER = {1000: "S", 60_000: "M", 3_600_000: "H", 86_400_000: "D"}
_HEADER = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$")

WEIGHT = "REQUEST_WEIGHT"
ORDERS = "ORDERS"

# Binance's published defaults (BINANCE.md §4); replaced by exchangeInfo.rateLimits at start.
DEFAULT_RULES: tuple[RateLimitRule, ...] = (
    RateLimitRule(WEIGHT, 60_000, 2400),
    RateLimitRule(ORDERS, 10_000, 300),
    RateLimitRule(ORDERS, 60_000, 1200),
)


def rule_from_wire(item: Mapping[str, object]) -> RateLimitRule:
    """One ``exchangeInfo.rateLimits`` entry → RateLimitRule."""
    unit = _INTERVAL_MS[str(item["interval"])]
    return RateLimitRule(str(item["rateLimitType"]), unit * int(str(item["intervalNum"])), int(str(item["limit"])))


def pool_name(kind: str, interval_ms: int) -> str:
    """``REQUEST_WEIGHT_1M``, ``ORDERS_10S`` … (the suffix Binance uses in its headers)."""
    for unit_ms in sorted(_LETTER, reverse=True):
        if interval_ms % unit_ms == 0:
            return f"{kind}_{interval_ms // unit_ms}{_LETTER[unit_ms]}"
    raise ValueError(f"unsupported interval {interval_ms} ms")


class InFlight:
    """One sent request's draw, counted as in flight until ``settle`` (idempotent)."""

    __slots__ = ("_counts", "_draws")

    def __init__(self, counts: dict[str, int], draws: dict[str, int]) -> None:
        self._counts, self._draws = counts, draws

    def settle(self) -> None:
        """The answer came (or the request failed): from now on the server's headers speak for it."""
        for name, need in self._draws.items():
            self._counts[name] = max(0, self._counts.get(name, 0) - need)
        self._draws = {}


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request draws: IP weight and order count."""

    weight: int = 0
    orders: int = 0


@dataclass(slots=True)
class _Pool:
    name: str
    kind: str
    interval_ms: int
    limit: int
    window_start_ms: int = 0
    used: int = 0
    blocked_until_ms: int = 0

    def roll(self, now_ms: int, carry: int = 0) -> None:
        """Enter the window of ``now_ms``; ``carry`` = draw still in flight, which the server may
        count in the new window (a request sent at :59.999 arrives at :00.001)."""
        start = now_ms - now_ms % self.interval_ms
        if start != self.window_start_ms:
            self.window_start_ms = start
            self.used = carry

    def draw(self, cost: Cost) -> int:
        return cost.weight if self.kind in (WEIGHT, "RAW_REQUESTS") else cost.orders


@dataclass(order=True, slots=True)
class _Waiter:
    lane: int
    seq: int
    pools: frozenset[str] = field(compare=False, default=frozenset())
    turn: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class RateLimiter:
    """Waits for capacity in every pool a request draws on, honouring lanes, 429s and bans."""

    def __init__(
        self,
        clock: Clock,
        rules: Sequence[RateLimitRule] = DEFAULT_RULES,
        *,
        reserve_fraction: float = 0.1,
    ) -> None:
        if not 0 <= reserve_fraction < 1:
            raise ValueError("reserve_fraction must be in [0, 1)")
        self._clock = clock
        self._reserve = reserve_fraction
        self._pools: dict[str, _Pool] = {}
        self._waiters: list[_Waiter] = []  # in arrival order; priority is (lane, seq)
        self._seq = itertools.count()
        self._banned_until_ms = 0
        # Draw of requests sent but not yet answered, per pool: a response's header cannot count
        # them yet (they may not have reached the server), so reconciliation adds them back.
        self._in_flight: dict[str, int] = {}
        self.configure(rules)

    # -- configuration / observation ------------------------------------------------

    def configure(self, rules: Sequence[RateLimitRule]) -> None:
        """Replace the pool table (from exchangeInfo.rateLimits), keeping current counts."""
        pools: dict[str, _Pool] = {}
        for rule in rules:
            name = pool_name(rule.kind, rule.interval_ms)
            old = self._pools.get(name)
            pool = _Pool(name, rule.kind, rule.interval_ms, rule.limit)
            if old is not None:
                pool.window_start_ms, pool.used, pool.blocked_until_ms = (
                    old.window_start_ms, old.used, old.blocked_until_ms,
                )
            pools[name] = pool
            RATE_LIMIT_LIMIT.labels(pool=name).set(rule.limit)
        self._pools = pools

    def used(self, name: str) -> int:
        pool = self._pools[name]
        self._roll(pool, self._clock.now_ms())
        return pool.used

    def limit(self, name: str) -> int:
        return self._pools[name].limit

    @property
    def pool_names(self) -> list[str]:
        return list(self._pools)

    @property
    def banned_until_ms(self) -> int:
        return self._banned_until_ms if self._banned_until_ms > self._clock.now_ms() else 0

    def observe_headers(self, headers: Mapping[str, str], *, sent_ms: int) -> None:
        """Set local counts to the server's, for the window the request was counted in."""
        now = self._clock.now_ms()
        for raw_name, raw_value in headers.items():
            match = _HEADER.match(raw_name.lower())
            if not match:
                continue
            kind = WEIGHT if match.group(1) == "used-weight" else ORDERS
            interval = int(match.group(2)) * _UNIT_MS[match.group(3)]
            pool = self._pools.get(pool_name(kind, interval))
            try:
                value = int(raw_value)
            except ValueError:
                continue
            if pool is None or value < 0:  # testnet sends -1: no information
                continue
            self._roll(pool, now)
            if sent_ms - sent_ms % pool.interval_ms != pool.window_start_ms:
                continue  # counted in a window that has already rolled over
            value += self._in_flight.get(pool.name, 0)
            if value != pool.used:
                log.debug("pool %s reconciled %d → %d", pool.name, pool.used, value)
            pool.used = value
            RATE_LIMIT_USED.labels(pool=pool.name).set(value)

    def _roll(self, pool: _Pool, now_ms: int) -> None:
        pool.roll(now_ms, self._in_flight.get(pool.name, 0))

    def dispatched(self, cost: Cost) -> InFlight:
        """``cost`` (already acquired) is on its way: counted until the ticket is settled."""
        draws = {p.name: p.draw(cost) for p in self._pools.values() if p.draw(cost) > 0}
        for name, need in draws.items():
            self._in_flight[name] = self._in_flight.get(name, 0) + need
        return InFlight(self._in_flight, draws)

    def block(self, cost: Cost, retry_after_s: float | None) -> None:
        """A 429: the pools this request drew on send nothing until Retry-After / window end."""
        now = self._clock.now_ms()
        for pool in self._pools.values():
            if pool.draw(cost) <= 0:
                continue
            self._roll(pool, now)
            if retry_after_s is not None and retry_after_s >= 0:
                until = now + int(retry_after_s * 1000)
            else:
                until = pool.window_start_ms + pool.interval_ms
            pool.blocked_until_ms = max(pool.blocked_until_ms, until)
            log.warning("rate limit hit on %s: pausing it until %d", pool.name, pool.blocked_until_ms)

    def ban(self, until_ms: int) -> None:
        """A 418: nothing leaves until ``until_ms``."""
        self._banned_until_ms = max(self._banned_until_ms, until_ms)
        BANNED.set(1)
        log.error("Binance banned this IP until %d (HTTP 418); all requests stopped", until_ms)

    # -- acquiring --------------------------------------------------------------------

    def _check_ban(self) -> None:
        now = self._clock.now_ms()
        if self._banned_until_ms:
            if now < self._banned_until_ms:
                raise Banned(f"IP banned until {self._banned_until_ms}", until_ms=self._banned_until_ms)
            self._banned_until_ms = 0
            BANNED.set(0)
            log.warning("ban lifted")

    def _delay_ms(self, cost: Cost, lane: Lane) -> int:
        """0 when the request fits now, else how long until it might."""
        now = self._clock.now_ms()
        delay = 0
        share = 1.0 if lane <= Lane.CANCEL else 1.0 - self._reserve
        for pool in self._pools.values():
            need = pool.draw(cost)
            if need <= 0:
                continue
            self._roll(pool, now)
            if pool.blocked_until_ms > now:
                delay = max(delay, pool.blocked_until_ms - now)
                continue
            cap = max(1, int(pool.limit * share))
            if need > pool.limit:
                raise ValueError(f"a cost of {need} can never fit pool {pool.name} ({pool.limit})")
            if pool.used + need > cap:
                delay = max(delay, pool.window_start_ms + pool.interval_ms - now)
        return delay

    def _charge(self, cost: Cost) -> None:
        for pool in self._pools.values():
            need = pool.draw(cost)
            if need > 0:
                pool.used += need
                RATE_LIMIT_USED.labels(pool=pool.name).set(pool.used)

    def _pools_of(self, cost: Cost) -> frozenset[str]:
        return frozenset(p.name for p in self._pools.values() if p.draw(cost) > 0)

    def _behind(self, waiter: _Waiter) -> bool:
        """True while a waiter of higher priority draws on one of the same pools."""
        return any(w < waiter and w.pools & waiter.pools for w in self._waiters)

    async def acquire(self, cost: Cost, lane: Lane) -> None:
        """Wait until ``cost`` fits every pool, in lane order; raises Banned during a ban."""
        self._check_ban()
        waiter = _Waiter(int(lane), next(self._seq), self._pools_of(cost))
        self._waiters.append(waiter)
        started = self._clock.monotonic()
        try:
            while True:
                self._check_ban()
                if self._behind(waiter):
                    waiter.turn.clear()
                    await waiter.turn.wait()
                    continue
                delay_ms = self._delay_ms(cost, lane)
                if delay_ms <= 0:
                    self._charge(cost)
                    return
                await self._clock.sleep(delay_ms / 1000)
        finally:
            self._waiters.remove(waiter)
            for other in self._waiters:  # let everyone re-check; the queue is short
                other.turn.set()
            RATE_LIMIT_WAIT_SECONDS.labels(lane=lane.name.lower()).observe(
                max(0.0, self._clock.monotonic() - started)
            )


# ------------------------------------------------------------------ endpoint weights
# Documented weights (BINANCE.md §2/§3, SDK 18.1.0 docstrings). Order placement costs no IP
# weight but one on each ORDERS pool; several reads cost more without a symbol.


def _klines(params: Mapping[str, str]) -> Cost:
    limit = int(params.get("limit", "500"))
    if limit < 100:
        return Cost(weight=1)
    if limit < 500:
        return Cost(weight=2)
    if limit <= 1000:
        return Cost(weight=5)
    return Cost(weight=10)


CostFn = Callable[[Mapping[str, str]], Cost]


def _by_symbol(with_symbol: int, without: int) -> CostFn:
    def cost(params: Mapping[str, str]) -> Cost:
        return Cost(weight=with_symbol if "symbol" in params else without)

    return cost


def _fixed(weight: int = 0, orders: int = 0) -> CostFn:
    fixed = Cost(weight=weight, orders=orders)

    def cost(params: Mapping[str, str]) -> Cost:
        return fixed

    return cost


def _batch_orders(params: Mapping[str, str]) -> Cost:
    # 5 IP weight, 5 on the 10 s order count and 1 on the 1 min count: the pools are charged
    # the larger figure (5) so the 10 s pool can never be overrun.
    return Cost(weight=5, orders=5)


ENDPOINT_COSTS: dict[tuple[str, str], CostFn] = {
    ("GET", "/fapi/v1/ping"): _fixed(1),
    ("GET", "/fapi/v1/time"): _fixed(1),
    ("GET", "/fapi/v1/exchangeInfo"): _fixed(1),
    ("GET", "/fapi/v1/klines"): _klines,
    ("GET", "/fapi/v1/premiumIndex"): _by_symbol(1, 10),
    ("GET", "/fapi/v1/fundingRate"): _fixed(1),
    ("POST", "/fapi/v1/order"): _fixed(0, 1),
    ("GET", "/fapi/v1/order"): _fixed(1),
    ("DELETE", "/fapi/v1/order"): _fixed(1),
    ("POST", "/fapi/v1/batchOrders"): _batch_orders,
    ("GET", "/fapi/v1/openOrders"): _by_symbol(1, 40),
    ("DELETE", "/fapi/v1/allOpenOrders"): _fixed(1),
    ("POST", "/fapi/v1/algoOrder"): _fixed(0, 1),
    ("GET", "/fapi/v1/algoOrder"): _fixed(1),
    ("DELETE", "/fapi/v1/algoOrder"): _fixed(1),
    ("GET", "/fapi/v1/openAlgoOrders"): _by_symbol(1, 40),
    ("DELETE", "/fapi/v1/algoOpenOrders"): _fixed(1),
    ("GET", "/fapi/v3/positionRisk"): _fixed(5),
    ("GET", "/fapi/v1/symbolConfig"): _fixed(5),
    ("GET", "/fapi/v3/account"): _fixed(5),
    ("GET", "/fapi/v3/balance"): _fixed(5),
    ("POST", "/fapi/v1/leverage"): _fixed(1),
    ("POST", "/fapi/v1/marginType"): _fixed(1),
    ("GET", "/fapi/v1/positionSide/dual"): _fixed(30),
    ("POST", "/fapi/v1/positionSide/dual"): _fixed(1),
    ("GET", "/fapi/v1/multiAssetsMargin"): _fixed(30),
    ("POST", "/fapi/v1/listenKey"): _fixed(1),
    ("PUT", "/fapi/v1/listenKey"): _fixed(1),
    ("DELETE", "/fapi/v1/listenKey"): _fixed(1),
    ("GET", "/fapi/v1/userTrades"): _fixed(5),
    ("GET", "/fapi/v1/income"): _fixed(30),
    ("GET", "/fapi/v1/commissionRate"): _fixed(20),
    ("GET", "/fapi/v1/accountConfig"): _fixed(5),
    ("GET", "/sapi/v1/account/apiRestrictions"): _fixed(1),  # spot host; its own IP-weight pool
}


def cost_of(method: str, path: str, params: Mapping[str, str]) -> Cost:
    """The documented cost of one request; unknown endpoints are a programming error."""
    try:
        fn = ENDPOINT_COSTS[(method, path)]
    except KeyError:
        raise KeyError(f"no weight known for {method} {path}; add it to ENDPOINT_COSTS") from None
    return fn(params)
