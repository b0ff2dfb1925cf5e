"""Binance's rate limits as the simulator enforces them (BINANCE.md §4).

* REQUEST_WEIGHT 2400 per minute per IP, reported in ``X-MBX-USED-WEIGHT-1M`` on every answer.
* ORDERS 300 per 10 s and 1200 per minute per account, reported in ``X-MBX-ORDER-COUNT-10S``
  and ``X-MBX-ORDER-COUNT-1M`` on order answers.
* Over a limit: HTTP 429, ``Retry-After`` (seconds to the window's end), code -1003. Carrying
  on regardless: after ``violations_before_ban`` 429s the IP is banned (HTTP 418 with the ban's
  end time in the message and ``Retry-After``); bans double from 2 minutes up to 3 days.

Windows are fixed and aligned like Binance's (the minute resets at :00) and run on real time
(a limit protects the server, whatever the simulation speed). The clock is injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exchanges.sim.errors import SimError

WEIGHT_LIMIT_1M = 2400
ORDERS_LIMIT_10S = 300
ORDERS_LIMIT_1M = 1200
FIRST_BAN_MS = 120_000
MAX_BAN_MS = 3 * 86_400_000


def klines_weight(params: dict[str, str]) -> int:
    limit = int(params.get("limit", "500") or 500)
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def by_symbol(with_symbol: int, without: int) -> Callable[[dict[str, str]], int]:
    return lambda params: with_symbol if params.get("symbol") else without


@dataclass
class Window:
    length_ms: int
    start_ms: int = 0
    used: int = 0

    def roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.length_ms
        if start != self.start_ms:
            self.start_ms, self.used = start, 0

    def retry_after_s(self, now_ms: int) -> int:
        return max(1, -(-(self.start_ms + self.length_ms - now_ms) // 1000))


@dataclass
class RateLimiter:
    """Weight and order-count pools with Binance's 429 → 418 escalation."""

    weight_limit: int = WEIGHT_LIMIT_1M
    orders_10s_limit: int = ORDERS_LIMIT_10S
    orders_1m_limit: int = ORDERS_LIMIT_1M
    violations_before_ban: int = 3
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    weight: Window = field(default_factory=lambda: Window(60_000))
    orders_10s: Window = field(default_factory=lambda: Window(10_000))
    orders_1m: Window = field(default_factory=lambda: Window(60_000))
    banned_until_ms: int = 0
    violations: int = 0
    bans: int = 0

    def _roll(self, now: int) -> None:
        for w in (self.weight, self.orders_10s, self.orders_1m):
            w.roll(now)

    def check_ban(self) -> None:
        now = self.now_ms()
        if now < self.banned_until_ms:
            raise self._ban_error(now)

    def _ban_error(self, now: int) -> SimError:
        return SimError(-1003, f"Way too many requests; IP banned until {self.banned_until_ms}. "
                               "Please use the websocket for live updates to avoid bans.", 418,
                        retry_after_s=max(1, -(-(self.banned_until_ms - now) // 1000)))

    def ban(self, duration_ms: int | None = None) -> None:
        now = self.now_ms()
        if duration_ms is None:
            duration_ms = min(MAX_BAN_MS, FIRST_BAN_MS * 2 ** self.bans)
        self.bans += 1
        self.banned_until_ms = now + duration_ms

    def _violation(self, now: int, retry_after_s: int, msg: str) -> SimError:
        self.violations += 1
        if self.violations > self.violations_before_ban:
            self.violations = 0
            self.ban()
            return self._ban_error(now)
        return SimError(-1003, msg, 429, retry_after_s=retry_after_s)

    def too_many(self) -> SimError:
        """A 429 as if the weight pool were exhausted (fault injection counts it too)."""
        now = self.now_ms()
        self._roll(now)
        return self._violation(now, self.weight.retry_after_s(now), _weight_msg(self.weight_limit))

    def charge(self, weight: int, orders: int) -> None:
        """Count a request; raise 429/418 when it breaks a limit (the request is not served)."""
        now = self.now_ms()
        self.check_ban()
        self._roll(now)
        self.weight.used += weight
        if self.weight.used > self.weight_limit:
            raise self._violation(now, self.weight.retry_after_s(now), _weight_msg(self.weight_limit))
        if orders:
            self.orders_10s.used += orders
            self.orders_1m.used += orders
            for w, limit, label in ((self.orders_10s, self.orders_10s_limit, "10 seconds"),
                                    (self.orders_1m, self.orders_1m_limit, "1 minute")):
                if w.used > limit:
                    raise self._violation(now, w.retry_after_s(now),
                                          f"Too many new orders; current limit is {limit} orders per {label}.")

    def headers(self, *, orders: bool) -> dict[str, str]:
        h = {"X-MBX-USED-WEIGHT-1M": str(self.weight.used)}
        if orders:
            h["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s.used)
            h["X-MBX-ORDER-COUNT-1M"] = str(self.orders_1m.used)
        return h


def _weight_msg(limit: int) -> str:
    return (f"Too many requests; current limit is {limit} requests per minute. "
            "Please use the websocket for live updates to avoid polling the API.")
