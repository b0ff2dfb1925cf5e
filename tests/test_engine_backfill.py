"""Engine: a burst's holes (start-up, reconnect) are fetched together and evaluated bar time by bar time."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from core.engine import Engine, _SymbolFeed
from core.errors import Retryable
from core.events import CandleClosed
from core.types import Candle, Timeframe

M = 60_000


def _candle(symbol: str, open_ms: int) -> Candle:
    one = Decimal(1)
    return Candle(symbol, Timeframe.M1, open_ms, one, one, one, one, one)


class _Venue:
    """The REST klines of an exchange that answers after a delay (outside Casino: its latency)."""

    def __init__(self, failing: str | None = None) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.failing = failing

    async def klines(self, symbol: str, timeframe: Timeframe, *, start_ms: int, end_ms: int, limit: int) -> list[Candle]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            if symbol == self.failing:
                raise Retryable(f"{symbol}: 503")
            return [_candle(symbol, t) for t in range(start_ms, end_ms + 1, M)]
        finally:
            self.in_flight -= 1


class _Pool:
    """Records the bursts the engine asks for (the sensors' own work is tested in test_sensor_pool)."""

    def __init__(self) -> None:
        self.bursts: list[list[str]] = []

    async def evaluate_many(self, closed: dict[str, tuple[Timeframe, ...]]) -> dict[str, list[Any]]:
        self.bursts.append(list(closed))
        return {symbol: [] for symbol in closed}


def _engine(symbols: list[str], venue: _Venue) -> tuple[Engine, list[tuple[str, int]], _Pool]:
    engine = Engine.__new__(Engine)
    applied: list[tuple[str, int]] = []
    pool = _Pool()
    engine._base = Timeframe.M1
    engine._feeds = {s: _SymbolFeed(last_open_ms=0) for s in symbols}
    engine.p = SimpleNamespace(exchange=venue, pool=pool)

    def append(candle: Candle) -> tuple[Timeframe, ...]:
        engine._feeds[candle.symbol].last_open_ms = candle.open_time_ms
        return (Timeframe.M1,)

    async def process_bar(candle: Candle, closed: tuple[Timeframe, ...], *, decide: bool = True,
                          readings: Any = None, **_: Any) -> None:
        assert not decide and closed == (Timeframe.M1,)
        applied.append((candle.symbol, candle.open_time_ms))

    engine._append = append  # type: ignore[method-assign]
    engine.process_bar = process_bar  # type: ignore[method-assign]
    return engine, applied, pool


async def _admit_all(engine: Engine, events: list[CandleClosed]) -> list[bool]:
    await engine._backfill_together(await engine._fetch_holes(events))
    admitted = []
    for event in events:
        admitted.append(await engine._admit(event.candle))
        engine._append(event.candle)
    return admitted


async def test_holes_of_a_burst_are_fetched_together_and_evaluated_a_bar_time_at_a_time() -> None:
    symbols = [f"S{i:02d}USDT" for i in range(10)]
    venue = _Venue()
    engine, applied, pool = _engine(symbols, venue)
    events = [CandleClosed(_candle(s, 4 * M)) for s in symbols]  # each misses the bars at 1, 2 and 3 minutes
    assert await _admit_all(engine, events) == [True] * 10
    assert venue.most_in_flight == 10  # one round trip for the burst, not ten in a row
    assert pool.bursts == [symbols] * 3  # one sensor burst per missing bar time, in the burst's symbol order
    assert applied == [(s, t) for t in (M, 2 * M, 3 * M) for s in symbols]  # every symbol's bar k before bar k+1


async def test_holes_of_different_lengths_line_up_by_time() -> None:
    venue = _Venue()
    engine, applied, pool = _engine(["AUSDT", "BUSDT"], venue)
    engine._feeds["BUSDT"].last_open_ms = 2 * M  # B misses only the bar at 3 minutes
    events = [CandleClosed(_candle("AUSDT", 4 * M)), CandleClosed(_candle("BUSDT", 4 * M))]
    await _admit_all(engine, events)
    assert applied == [("AUSDT", M), ("AUSDT", 2 * M), ("AUSDT", 3 * M), ("BUSDT", 3 * M)]
    assert pool.bursts == [["AUSDT", "BUSDT"]]  # single bars are evaluated by process_bar itself


async def test_a_failed_fetch_is_raised_once_the_holes_before_it_are_applied() -> None:
    symbols = ["AUSDT", "BUSDT", "CUSDT"]
    engine, applied, _pool = _engine(symbols, _Venue(failing="BUSDT"))
    events = [CandleClosed(_candle(s, 3 * M)) for s in symbols]
    with pytest.raises(Retryable, match="BUSDT"):
        await _admit_all(engine, events)
    assert applied == [("AUSDT", M), ("AUSDT", 2 * M)]


async def test_one_hole_is_fetched_where_it_is_met() -> None:
    venue = _Venue()
    engine, applied, pool = _engine(["AUSDT", "BUSDT"], venue)
    engine._feeds["BUSDT"].last_open_ms = None  # nothing yet: no hole to fill
    events = [CandleClosed(_candle("AUSDT", 3 * M)), CandleClosed(_candle("BUSDT", M))]
    assert await engine._fetch_holes(events) == {}
    assert await _admit_all(engine, events) == [True, True]
    assert applied == [("AUSDT", M), ("AUSDT", 2 * M)] and pool.bursts == []
