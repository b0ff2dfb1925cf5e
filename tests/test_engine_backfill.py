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
    """Records the bursts the engine sends (the sensors' own work is tested in test_sensor_pool)."""

    def __init__(self, log: list[tuple[str, Any]] | None = None) -> None:
        self.bursts: list[list[str]] = []
        self.log = log if log is not None else []

    def submit(self, closed: dict[str, tuple[Timeframe, ...]]) -> list[str]:
        self.bursts.append(list(closed))
        self.log.append(("sent", list(closed)))
        return list(closed)

    async def collect(self, sent: list[str]) -> dict[str, list[Any]]:
        await asyncio.sleep(0)
        self.log.append(("collected", sent))
        return {symbol: [] for symbol in sent}


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
        assert not decide and closed == (Timeframe.M1,) and readings == []  # evaluated with its bar time
        applied.append((candle.symbol, candle.open_time_ms))
        pool.log.append(("applied", (candle.symbol, candle.open_time_ms)))

    engine._append = append  # type: ignore[method-assign]
    engine.process_bar = process_bar  # type: ignore[method-assign]
    return engine, applied, pool


async def _admit_all(engine: Engine, events: list[CandleClosed]) -> list[bool]:
    last = await engine._backfill_together(await engine._fetch_holes(events))
    if last is not None:
        await engine._apply_hole_step(*last)
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
    assert pool.bursts == [["AUSDT"], ["AUSDT"], ["AUSDT", "BUSDT"]]


async def test_a_failed_fetch_is_raised_once_the_holes_before_it_are_applied() -> None:
    symbols = ["AUSDT", "BUSDT", "CUSDT"]
    engine, applied, _pool = _engine(symbols, _Venue(failing="BUSDT"))
    events = [CandleClosed(_candle(s, 3 * M)) for s in symbols]
    with pytest.raises(Retryable, match="BUSDT"):
        await _admit_all(engine, events)
    assert applied == [("AUSDT", M), ("AUSDT", 2 * M)]


async def test_a_single_hole_is_fetched_with_the_burst_too() -> None:
    venue = _Venue()
    engine, applied, pool = _engine(["AUSDT", "BUSDT"], venue)
    engine._feeds["BUSDT"].last_open_ms = None  # nothing yet: no hole to fill
    events = [CandleClosed(_candle("AUSDT", 3 * M)), CandleClosed(_candle("BUSDT", M))]
    assert list(await engine._fetch_holes(events)) == ["AUSDT"]
    assert await _admit_all(engine, events) == [True, True]
    assert applied == [("AUSDT", M), ("AUSDT", 2 * M)] and pool.bursts == [["AUSDT"], ["AUSDT"]]


async def test_the_live_bars_are_sent_before_the_holes_last_bar_time_is_applied() -> None:
    """The first bars after a hole (a reconnect that missed a bar): the workers
    compute the live bars while the engine applies the hole's last bar time, and only then
    does the live burst's evaluation get collected and decided."""
    symbols = ["AUSDT", "BUSDT"]
    engine, applied, pool = _engine(symbols, _Venue())
    engine.settle_user_events = None
    engine._live = SimpleNamespace(monotonic=lambda: 0.0)
    engine._burst_entries = engine._burst_votes = None

    async def decide_events(events: Any, bars: Any, readings: Any, sensor_wait: float) -> None:
        pool.log.append(("decided", sorted(readings)))

    engine._decide_events = decide_events  # type: ignore[method-assign]
    events = [CandleClosed(_candle(s, 3 * M), received_s=1.0) for s in symbols]
    await engine._handle_events_hot(events)
    assert pool.log == [
        ("sent", symbols), ("collected", symbols), ("applied", ("AUSDT", M)), ("applied", ("BUSDT", M)),
        ("sent", symbols),  # the hole's last bar time, sent…
        ("sent", symbols),  # …then the live bars at once
        ("collected", symbols), ("applied", ("AUSDT", 2 * M)), ("applied", ("BUSDT", 2 * M)),
        ("collected", symbols), ("decided", symbols),
    ]
    assert applied == [(s, t) for t in (M, 2 * M) for s in symbols]
