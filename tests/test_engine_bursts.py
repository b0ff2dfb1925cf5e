"""Engine: a bar's closes, arriving one after the other, are handled as one burst."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from core.engine import Engine
from core.events import CandleClosed, MarketEvent, MarkPriceUpdate
from core.types import Candle, Timeframe

M = 60_000
SYMBOLS = [f"S{i:02d}USDT" for i in range(5)]


def _close(symbol: str, open_ms: int) -> CandleClosed:
    one = Decimal(1)
    return CandleClosed(Candle(symbol, Timeframe.M1, open_ms, one, one, one, one, one))


def _engine() -> Engine:
    engine = Engine.__new__(Engine)
    engine._base = Timeframe.M1
    engine.symbols = list(SYMBOLS)
    return engine


async def _feed(queue: asyncio.Queue[MarketEvent | None], items: list[MarketEvent | None], gap_s: float) -> None:
    for item in items:
        await asyncio.sleep(gap_s)
        await queue.put(item)


async def test_the_rest_of_the_bar_joins_the_burst() -> None:
    queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue()
    burst: list[MarketEvent] = [_close(SYMBOLS[0], 5 * M)]
    mark = MarkPriceUpdate(SYMBOLS[2], Decimal(1), Decimal(1), Decimal(0), 0, 0)
    later: list[MarketEvent | None] = [_close(SYMBOLS[1], 5 * M), mark, *(_close(s, 5 * M) for s in SYMBOLS[2:])]
    feeder = asyncio.create_task(_feed(queue, [*later, _close(SYMBOLS[0], 6 * M)], 0.002))
    assert await _engine()._complete_bar(queue, burst, window_s=1.0)
    assert burst[1:] == later  # everything that came meanwhile, in arrival order
    assert queue.qsize() == 0 and not feeder.done()  # the next bar's close is not waited for
    await feeder


async def test_a_symbol_that_does_not_close_costs_at_most_the_window() -> None:
    queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue()
    burst: list[MarketEvent] = [_close(SYMBOLS[0], 5 * M)]
    for s in SYMBOLS[1:-1]:
        queue.put_nowait(_close(s, 5 * M))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _engine()._complete_bar(queue, burst, window_s=0.05)
    assert 0.04 <= loop.time() - started < 0.5
    assert len(burst) == len(SYMBOLS) - 1


async def test_the_stream_ending_while_waiting_is_reported() -> None:
    queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue()
    burst: list[MarketEvent] = [_close(SYMBOLS[0], 5 * M)]
    queue.put_nowait(_close(SYMBOLS[1], 5 * M))
    queue.put_nowait(None)
    assert not await _engine()._complete_bar(queue, burst, window_s=1.0)
    assert len(burst) == 2


async def test_a_burst_without_a_close_is_not_held() -> None:
    queue: asyncio.Queue[MarketEvent | None] = asyncio.Queue()
    assert await _engine()._complete_bar(queue, [], window_s=1.0)
