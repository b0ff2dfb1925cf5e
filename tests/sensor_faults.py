"""Misbehaving sensors for the pool tests, loaded into workers as a plugin module.

They misbehave only on bars whose volume is a marker value the test writes, so the same
worker serves normal bars before and after.
"""

from __future__ import annotations

import os
import time

import numpy as np

from sensors.base import Bars, Family, sensor

HANG_VOLUME = 777.0
EXIT_VOLUME = 666.0
BLOAT_VOLUME = 555.0
_ballast: list[np.ndarray] = []


@sensor("fault_raises", Family.STRUCTURE, warmup=lambda p: 0, timeframes=("1m",))
def fault_raises(b: Bars) -> np.ndarray:
    """Always raises."""
    raise ZeroDivisionError("fault_raises always fails")


@sensor("fault_hangs", Family.STRUCTURE, warmup=lambda p: 0, timeframes=("1m",))
def fault_hangs(b: Bars) -> np.ndarray:
    """Never returns on a marker bar."""
    if b.volume[-1] == HANG_VOLUME:
        time.sleep(3600)
    return np.zeros(len(b))


@sensor("fault_exits", Family.STRUCTURE, warmup=lambda p: 0, timeframes=("1m",))
def fault_exits(b: Bars) -> np.ndarray:
    """Kills its process on a marker bar."""
    if b.volume[-1] == EXIT_VOLUME:
        os._exit(13)
    return np.zeros(len(b))


@sensor("fault_bloats", Family.STRUCTURE, warmup=lambda p: 0, timeframes=("1m",))
def fault_bloats(b: Bars) -> np.ndarray:
    """Holds on to 200 MB after a marker bar (a leak)."""
    if b.volume[-1] == BLOAT_VOLUME and not _ballast:
        _ballast.append(np.ones(25_000_000))
    return np.zeros(len(b))
