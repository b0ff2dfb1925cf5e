"""Rate limiter on a FakeClock: bursts never exceed a pool, lanes, header reconciliation, 429/418."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from core.clock import FakeClock
from core.errors import Banned
from core.metrics import BANNED
from core.types import RateLimitRule
from exchanges.binance.limits import Cost, Lane, RateLimiter, cost_of, rule_from_wire

START = 1_700_000_080_000  # 40 s into a minute: the first window is short on purpose
SMALL = (RateLimitRule("REQUEST_WEIGHT", 60_000, 120), RateLimitRule("ORDERS", 10_000, 10),
         RateLimitRule("ORDERS", 60_000, 40))


async def _drive(clock: FakeClock, tasks: list[asyncio.Task[None]], step_s: float = 0.5) -> None:
    for _ in range(100_000):
        if all(t.done() for t in tasks):
            break
        await clock.advance(step_s)
    for t in tasks:
        t.result()


async def test_burst_of_50_symbols_never_exceeds_any_pool() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL)
    grants: list[tuple[int, Cost]] = []

    async def request(method: str, path: str, params: dict[str, str], lane: Lane) -> None:
        cost = cost_of(method, path, params)
        await limiter.acquire(cost, lane)
        grants.append((clock.now_ms(), cost))

    # Startup for 50 symbols: history, mark price, open orders and algo orders, then a bracket each.
    calls = []
    for i in range(50):
        sym = {"symbol": f"S{i}USDT"}
        calls += [("GET", "/fapi/v1/klines", {**sym, "limit": "1500"}, Lane.MARKET_DATA),
                  ("GET", "/fapi/v1/premiumIndex", sym, Lane.MARKET_DATA),
                  ("GET", "/fapi/v1/openOrders", sym, Lane.CANCEL),
                  ("GET", "/fapi/v1/openAlgoOrders", sym, Lane.CANCEL),
                  ("POST", "/fapi/v1/order", sym, Lane.ENTRY),
                  ("POST", "/fapi/v1/algoOrder", sym, Lane.PROTECT),
                  ("POST", "/fapi/v1/algoOrder", sym, Lane.PROTECT)]
    tasks = [asyncio.create_task(request(*c)) for c in calls]
    await _drive(clock, tasks)

    assert len(grants) == len(calls)
    for interval, limit, field in ((60_000, 120, "weight"), (10_000, 10, "orders"), (60_000, 40, "orders")):
        per_window: dict[int, int] = defaultdict(int)
        for at, cost in grants:
            per_window[at - at % interval] += getattr(cost, field)
        assert max(per_window.values()) <= limit, (interval, field, per_window)
    assert sum(c.weight for _, c in grants) == 50 * (10 + 1 + 1 + 1)


async def test_priority_lanes_served_in_order_and_reserve_kept_for_protection() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, (RateLimitRule("ORDERS", 10_000, 10),), reserve_fraction=0.2)
    order: list[str] = []

    async def take(name: str, lane: Lane) -> None:
        await limiter.acquire(Cost(orders=1), lane)
        order.append(name)

    # Entries may use only 80 % of the pool: the 9th entry waits while protection still fits.
    for i in range(9):
        asyncio.create_task(take(f"entry{i}", Lane.ENTRY))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == [f"entry{i}" for i in range(8)]
    protect = asyncio.create_task(take("stop", Lane.PROTECT))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order[-1] == "stop"  # served ahead of the waiting entry, from the reserve
    data = asyncio.create_task(take("klines", Lane.MARKET_DATA))
    cancel = asyncio.create_task(take("cancel", Lane.CANCEL))
    await asyncio.sleep(0)
    assert order[-2:] == ["stop", "cancel"]  # the last unit of the pool goes to the cancel
    await _drive(clock, [protect, data, cancel])
    # Next window: the entry queued first still precedes the later market-data read.
    assert order.index("entry8") < order.index("klines")


async def test_requests_on_other_pools_are_not_held_behind_a_waiting_entry() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL)
    for _ in range(9):  # 90 % of ORDERS_10S: entries are now out of room for this window
        await limiter.acquire(Cost(orders=1), Lane.ENTRY)
    entry = asyncio.create_task(limiter.acquire(Cost(orders=1), Lane.ENTRY))
    await asyncio.sleep(0)
    read = asyncio.create_task(limiter.acquire(Cost(weight=5), Lane.MARKET_DATA))
    await asyncio.sleep(0)
    assert read.done() and not entry.done()
    await _drive(clock, [entry])


async def test_header_reconciliation_corrects_drift_both_ways() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL)
    for _ in range(10):
        await limiter.acquire(Cost(weight=1), Lane.MARKET_DATA)
    assert limiter.used("REQUEST_WEIGHT_1M") == 10

    limiter.observe_headers({"x-mbx-used-weight-1m": "95"}, sent_ms=clock.now_ms())  # others share our IP
    assert limiter.used("REQUEST_WEIGHT_1M") == 95
    limiter.observe_headers({"X-MBX-USED-WEIGHT-1M": "4"}, sent_ms=clock.now_ms())  # we over-counted
    assert limiter.used("REQUEST_WEIGHT_1M") == 4
    limiter.observe_headers({"X-MBX-ORDER-COUNT-10S": "7", "x-mbx-order-count-1m": "9"}, sent_ms=clock.now_ms())
    assert (limiter.used("ORDERS_10S"), limiter.used("ORDERS_1M")) == (7, 9)
    limiter.observe_headers({"x-mbx-used-weight-1m": "-1"}, sent_ms=clock.now_ms())  # testnet: no info
    assert limiter.used("REQUEST_WEIGHT_1M") == 4
    sent = clock.now_ms()
    await clock.advance(30)  # the response arrives after the window rolled over: stale count
    limiter.observe_headers({"x-mbx-used-weight-1m": "100"}, sent_ms=sent)
    assert limiter.used("REQUEST_WEIGHT_1M") == 0

    # A corrected-high count really blocks: 95 + 30 > 108 (90 % of 120) for a read.
    limiter.observe_headers({"x-mbx-used-weight-1m": "95"}, sent_ms=clock.now_ms())
    waiting = asyncio.create_task(limiter.acquire(Cost(weight=30), Lane.MARKET_DATA))
    await asyncio.sleep(0)
    assert not waiting.done()
    await _drive(clock, [waiting])
    assert limiter.used("REQUEST_WEIGHT_1M") == 30


async def test_429_pauses_the_pool_until_retry_after() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL)
    limiter.block(Cost(weight=1), retry_after_s=7)
    t0 = clock.now_ms()
    read = asyncio.create_task(limiter.acquire(Cost(weight=1), Lane.MARKET_DATA))
    order = asyncio.create_task(limiter.acquire(Cost(orders=1), Lane.ENTRY))  # other pool unaffected
    await asyncio.sleep(0)
    assert order.done() and not read.done()
    await _drive(clock, [read], step_s=0.25)
    assert clock.now_ms() - t0 >= 7000


async def test_418_bans_the_client_until_the_stated_time() -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL)
    until = START + 120_000
    limiter.ban(until)
    assert BANNED._value.get() == 1
    with pytest.raises(Banned) as info:
        await limiter.acquire(Cost(weight=1), Lane.PROTECT)
    assert info.value.until_ms == until
    await clock.advance(120)
    await limiter.acquire(Cost(weight=1), Lane.PROTECT)
    assert BANNED._value.get() == 0


def test_rules_from_exchange_info_and_weights() -> None:
    rule = rule_from_wire({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300})
    assert rule == RateLimitRule("ORDERS", 10_000, 300)
    assert cost_of("GET", "/fapi/v1/klines", {"limit": "99"}).weight == 1
    assert cost_of("GET", "/fapi/v1/klines", {"limit": "100"}).weight == 2
    assert cost_of("GET", "/fapi/v1/klines", {"limit": "1000"}).weight == 5
    assert cost_of("GET", "/fapi/v1/klines", {"limit": "1500"}).weight == 10
    assert cost_of("GET", "/fapi/v1/openOrders", {}).weight == 40
    assert cost_of("GET", "/fapi/v1/openOrders", {"symbol": "X"}).weight == 1
    assert cost_of("POST", "/fapi/v1/order", {}) == Cost(weight=0, orders=1)
    with pytest.raises(KeyError):
        cost_of("GET", "/fapi/v9/unknown", {})


async def test_requests_in_flight_survive_reconciliation_and_window_rollover() -> None:
    """A header can only count what reached the server: what we sent since still counts."""
    clock = FakeClock(START)
    limiter = RateLimiter(clock, SMALL, reserve_fraction=0.0)
    tickets = []
    for _ in range(10):  # 10 × 12 = 120: the whole minute's weight is on the wire
        await limiter.acquire(Cost(weight=12), Lane.MARKET_DATA)
        tickets.append(limiter.dispatched(Cost(weight=12)))
    tickets[0].settle()
    limiter.observe_headers({"x-mbx-used-weight-1m": "12"}, sent_ms=clock.now_ms())  # only the first arrived
    assert limiter.used("REQUEST_WEIGHT_1M") == 120  # not 12: nine are still in flight
    blocked = asyncio.create_task(limiter.acquire(Cost(weight=12), Lane.MARKET_DATA))
    await asyncio.sleep(0)
    assert not blocked.done()
    tickets[0].settle()  # settling twice changes nothing
    for t in tickets[1:5]:
        t.settle()
    await clock.advance(20)  # the window rolls while five requests are still on their way
    await asyncio.sleep(0)
    assert blocked.done() and limiter.used("REQUEST_WEIGHT_1M") == 5 * 12 + 12  # carried + the new one
    for t in tickets[5:]:
        t.settle()
    limiter.observe_headers({"x-mbx-used-weight-1m": "72"}, sent_ms=clock.now_ms())
    assert limiter.used("REQUEST_WEIGHT_1M") == 72
