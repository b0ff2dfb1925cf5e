"""Snapshots wait while a decision is under way or an order is in flight for protection.

Against the simulated exchange over loopback, through the real connector: a bracket's
transitions ask for a snapshot; while the engine says it is hot the save is deferred (the
journal already holds every transition), ``save_soon`` runs it once the burst is decided, and a
bracket protected while nothing is hot is snapshotted as before.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from config.settings import CroupierSettings
from core.types import Side
from tests.croupier_harness import Rig, decision, recorded

pytestmark = pytest.mark.timeout(60)


async def test_snapshots_wait_for_the_hot_path_and_follow_it(data_dir: Path, tmp_path: Path) -> None:
    async with Rig(recorded(data_dir), tmp_path, CroupierSettings()) as rig:
        writer = rig.c.writer
        assert writer is not None
        hot = True
        rig.c.hot = lambda: hot
        bid = await rig.c.open_bracket(decision("BTCUSDT", Side.BUY, await rig.mark(), tp=0.05, sl=0.05),
                                       Decimal("0.010"))
        assert bid is not None
        await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", timeout=10)
        saves = writer.saves
        for _ in range(5):
            await asyncio.sleep(0)  # the deferred saves' loop turns
        assert writer.saves == saves and writer.dirty  # transitions happened, no snapshot while hot
        hot = False
        rig.c.save_soon()
        await rig.wait_for(lambda: writer.saves > saves, timeout=5)
        assert not writer.dirty
        # quiet: the next transitions are snapshotted on the following loop turn, as before
        saves = writer.saves
        await rig.c.oco.flatten(bid, "test")  # type: ignore[union-attr]
        await rig.wait_for(lambda: rig.state(bid) == "CLOSED", timeout=10)
        await rig.wait_for(lambda: writer.saves > saves, timeout=5)
