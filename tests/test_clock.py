"""FakeClock drives sleepers deterministically; LiveClock and ScaledClock read real time."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import FakeClock, LiveClock, ScaledClock
from core.ports import Clock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(start_ms=1_000_000)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now_ms()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 2.0), ("a", 1.0), ("c", 5.0))]
    await asyncio.sleep(0)
    assert clock.pending_sleepers == 3
    assert clock.next_deadline_ms() == 1_001_000
    await clock.advance(1.5)
    assert woke == [("a", 1_001_500)]
    await clock.advance(10)
    await asyncio.gather(*tasks)
    assert [n for n, _ in woke] == ["a", "b", "c"]
    assert clock.monotonic() == pytest.approx(11.5)


async def test_fake_clock_never_goes_back() -> None:
    clock = FakeClock(start_ms=5000)
    with pytest.raises(ValueError):
        clock.set_ms(4999)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_clocks_satisfy_protocol_and_scaled_clock_runs_faster() -> None:
    for clock in (LiveClock(), FakeClock(), ScaledClock(0, 100.0)):
        assert isinstance(clock, Clock)
    scaled = ScaledClock(start_ms=0, speed=1000.0)
    live = LiveClock()
    t0 = live.monotonic()
    await scaled.sleep(20.0)  # 20 simulated seconds = 20 ms real
    assert live.monotonic() - t0 < 1.0
    assert scaled.now_ms() >= 20_000
