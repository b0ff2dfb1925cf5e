"""Server-time offset on a FakeClock, and the routed websocket URLs."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import FakeClock
from core.errors import Retryable
from exchanges.binance.time_sync import TimeSync
from exchanges.binance.urls import DEMO, LIVE, BinanceUrls, Route, resolve_urls, route_for


async def test_offset_is_the_median_corrected_by_half_the_round_trip() -> None:
    clock = FakeClock(1_700_000_000_000)
    skews = iter([1_000, 1_020, 5_000, 990, 1_010])  # one outlier sample

    async def server_time() -> int:
        await clock.advance(0.1)  # 100 ms out, the server stamps, 100 ms back
        stamp = clock.now_ms() + next(skews)
        await clock.advance(0.1)
        return stamp

    sync = TimeSync(clock, server_time, samples=5, interval_s=300)
    assert await sync.sync() == 1_010
    assert sync.timestamp_ms() == clock.now_ms() + 1_010


async def test_periodic_refresh_keeps_the_old_offset_on_failure() -> None:
    clock = FakeClock(1_700_000_000_000)
    answers: list[int | Exception] = [500, Retryable("down"), 700]

    async def server_time() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return clock.now_ms() + answer

    sync = TimeSync(clock, server_time, samples=1, interval_s=300)
    await sync.sync()
    task = asyncio.create_task(sync.run())
    await asyncio.sleep(0)  # let it start sleeping
    await clock.advance(300)
    assert sync.offset_ms == 500  # refresh failed: kept
    await clock.advance(300)
    assert sync.offset_ms == 700
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_streams_are_routed_by_name() -> None:
    assert route_for("btcusdt@kline_1m") is Route.MARKET
    assert route_for("btcusdt@markPrice@1s") is Route.MARKET
    assert route_for("btcusdt@bookTicker") is Route.PUBLIC
    assert route_for("btcusdt@depth@0ms") is Route.PUBLIC
    assert LIVE.combined_stream(Route.MARKET, ["BTCUSDT@kline_1m", "btcusdt@markPrice@1s"]) == (
        "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1m/btcusdt@markprice@1s")
    with pytest.raises(ValueError, match="do not belong"):
        LIVE.combined_stream(Route.MARKET, ["btcusdt@bookTicker"])
    assert LIVE.private_stream("a/b+c") == "wss://fstream.binance.com/private/ws?listenKey=a%2Fb%2Bc"
    assert resolve_urls("http://127.0.0.1:8080/", None, default=DEMO) == BinanceUrls(
        "http://127.0.0.1:8080", DEMO.ws)
    with pytest.raises(ValueError):
        BinanceUrls("ftp://x", "wss://y")
