"""Engine: no garbage collection runs while a burst is handled (core.heap, "Bursts")."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any

import pytest

from core.engine import Engine


def _engine(log: list[Any]) -> Engine:
    engine = Engine.__new__(Engine)
    engine._hot = 0
    engine._collector_paused = False
    engine._quiet = asyncio.Event()
    engine._quiet.set()
    engine.p = SimpleNamespace(croupier=SimpleNamespace(save_soon=lambda: log.append(("saved", gc.isenabled()))))
    return engine


async def test_collections_wait_for_the_end_of_the_bursts_in_flight() -> None:
    log: list[Any] = []
    engine = _engine(log)
    second_started, first_ended = asyncio.Event(), asyncio.Event()

    async def handle(events: Any) -> None:
        log.append((events, "start", gc.isenabled()))
        if events == "first":
            await second_started.wait()  # a second burst starts while the first is in flight
        else:
            second_started.set()
            await first_ended.wait()  # and is still in flight when the first ends
        # allocations pile up with the collector off: none of them runs a collection here
        before = gc.get_count()[0]
        junk = [[i] for i in range(5_000)]
        log.append((events, "end", gc.isenabled(), gc.get_count()[0] - before >= 4_000, len(junk)))
        if events == "first":
            first_ended.set()

    engine._handle_events_hot = handle  # type: ignore[method-assign]
    assert gc.isenabled()
    await asyncio.gather(engine._handle_events("first"), engine._handle_events("second"))
    assert gc.isenabled()  # back on once neither is in flight
    assert log == [
        ("first", "start", False), ("second", "start", False),
        ("first", "end", False, True, 5_000),
        ("second", "end", False, True, 5_000),  # still off: the second was in flight
        ("saved", True),  # once, after the last burst: with the collector back on
    ]


async def test_the_collector_comes_back_after_a_failed_burst_and_stays_off_if_it_was() -> None:
    engine = _engine([])

    async def fail(events: Any) -> None:
        raise RuntimeError("burst failed")

    engine._handle_events_hot = fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="burst failed"):
        await engine._handle_events([])
    assert gc.isenabled()
    gc.disable()  # an embedding program's choice: not turned on behind its back
    try:
        with pytest.raises(RuntimeError):
            await engine._handle_events([])
        assert not gc.isenabled()
    finally:
        gc.enable()
