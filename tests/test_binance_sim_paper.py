"""Paper speed: the simulated Binance at 60× real time, the connector on the same scaled clock.

Also the connector's time sync against a server clock that is not its own (a faster one, a
stepped one, a live one with jitter) — on a FakeClock, and over loopback with a LiveClock.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.clock import FakeClock, LiveClock, ScaledClock
from core.events import CandleClosed, OrderUpdate, StreamGap
from core.metrics import API_ERRORS
from core.types import OrderRequest, OrderStatus, OrderType, Side, TimeInForce, Timeframe
from exchanges.binance.time_sync import TimeSync
from exchanges.sim.feed import SymbolData
from tests.binance_sim import MIN, SETTINGS, Collector, connected, connector, load_recorded, running, sim_server

SPEED = 60.0


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return load_recorded(data_dir)


def _clock_errors() -> float:
    return sum(API_ERRORS.labels(endpoint=e, code="-1021")._value.get()
               for e in ("/fapi/v1/order", "/fapi/v3/balance", "/fapi/v1/openOrders"))


async def test_paper_speed_signed_requests_and_streams_keep_up(recorded: dict[str, SymbolData]) -> None:
    async with running(sim_server(recorded, speed=SPEED)) as server:
        assert isinstance(server.clock, ScaledClock)
        client = connector(server)  # the paper-mode wiring: the sim's ScaledClock
        market = user = None
        try:
            await client.start()
            before = _clock_errors()
            market = Collector(client.market_stream(["BTCUSDT", "ETHUSDT"], [Timeframe.M1], mark_price=True))
            user = Collector(client.user_stream())
            await connected(server, 2)
            mark = (await client.mark_price("BTCUSDT")).mark_price
            price = (mark * D("0.9")).quantize(D("0.1"))
            placed = 0
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.5  # 2.5 real seconds = 2.5 simulated minutes
            while loop.time() < end:
                placed += 1
                cid = f"paper-{placed}"
                order = await client.place_order(OrderRequest(
                    "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"), cid, price=price,
                    time_in_force=TimeInForce.GTC))
                assert order.status is OrderStatus.NEW
                assert (await client.cancel_order("BTCUSDT", client_order_id=cid)).status is OrderStatus.CANCELED
            assert _clock_errors() == before  # no -1021 at paper speed
            assert abs(client.http.time_sync.offset_ms) < SPEED * 100  # within 100 real ms
            canceled = await user.wait_count(
                lambda e: isinstance(e, OrderUpdate) and e.order.status is OrderStatus.CANCELED, placed)
            assert {e.order.client_order_id for e in canceled} == {f"paper-{i}" for i in range(1, placed + 1)}
            candles = await market.wait_count(lambda e: isinstance(e, CandleClosed), 2 * 2)
            for symbol in ("BTCUSDT", "ETHUSDT"):
                opens = [e.candle.open_time_ms for e in candles if e.candle.symbol == symbol]
                assert opens == list(range(opens[0], opens[0] + len(opens) * MIN, MIN))
            assert not any(e.backfilled for e in candles)  # the live stream kept up: nothing to backfill
            assert not [e for e in market.items if isinstance(e, StreamGap)]
        finally:
            for c in (market, user):
                if c is not None:
                    await c.close()
            await client.close()


async def test_live_clock_against_a_fast_sim_learns_the_rate(recorded: dict[str, SymbolData]) -> None:
    """The engine forgot to pass the sim's clock: after two -1021 resyncs the timestamps follow."""
    settings = SETTINGS.model_copy(update={"recv_window_ms": 500, "time_sync_interval_s": 3600})
    async with running(sim_server(recorded, speed=SPEED)) as server:
        client = connector(server, clock=LiveClock(), settings=settings)
        try:
            await client.start()
            before = _clock_errors()
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.5
            while loop.time() < end:
                await client.balances()
                await asyncio.sleep(0.02)
            learned = _clock_errors() - before
            assert 1 <= learned <= 2  # each answered by one resync and one successful retry
            assert client.http.time_sync.rate == pytest.approx(SPEED, rel=0.05)
            end = loop.time() + 1.0
            while loop.time() < end:
                await client.balances()
                await asyncio.sleep(0.02)
            assert _clock_errors() - before == learned  # none once the rate is known
            bars = await client.klines("BTCUSDT", Timeframe.M1, limit=3)
            assert bars[-1].close_time_ms < server.clock.now_ms() <= bars[-1].close_time_ms + MIN + 2_000
        finally:
            await client.close()


async def _synced(clock: FakeClock, sync: TimeSync, gap_s: float) -> None:
    await clock.advance(gap_s)
    await sync.sync()


async def test_a_fast_server_clock_is_followed_after_two_agreeing_measurements() -> None:
    clock = FakeClock(1_700_000_000_000)
    start = clock.now_ms()
    server_start = 1_690_000_000_000

    async def server_time() -> int:
        await clock.advance(0.001)
        return server_start + round(60 * (clock.now_ms() - start))

    sync = TimeSync(clock, server_time, samples=3)
    await sync.sync()
    await _synced(clock, sync, 2)
    assert sync.rate == 1.0  # one measurement is not enough
    await _synced(clock, sync, 2)
    assert sync.rate == pytest.approx(60, rel=0.01)
    await clock.advance(10)
    expected = server_start + 60 * (clock.now_ms() - start)
    assert abs(sync.timestamp_ms() - expected) < 500


async def test_live_jitter_and_a_stepped_clock_are_never_extrapolated() -> None:
    clock = FakeClock(1_700_000_000_000)
    rng = random.Random(7)
    jumps = iter([60_000, 600_000, 5_000, 120_000, 0, 30_000])
    server = {"jittery": 0, "stepped": 1_690_000_000_000}

    async def jittery() -> int:  # a real exchange: 1 s ahead, up to ±40 ms of network asymmetry
        await clock.advance(0.02)
        return clock.now_ms() + 1000 + rng.randint(-40, 40)

    async def stepped() -> int:  # a manually advanced simulator
        await clock.advance(0.001)
        return server["stepped"]

    live = TimeSync(clock, jittery, samples=5)
    manual = TimeSync(clock, stepped, samples=3)
    for _ in range(6):
        await _synced(clock, live, 1.5)
        server["stepped"] += next(jumps)
        await _synced(clock, manual, 1.0)
        assert live.rate == 1.0 and manual.rate == 1.0
        assert abs(live.offset_ms - 1000) <= 60
