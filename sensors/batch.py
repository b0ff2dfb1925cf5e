"""Batch mode: the same sensor functions over whole histories (replays, research).

``run_batch`` computes each sensor once over the full arrays (vectorised TA-Lib); the value
at bar i equals what a live evaluation over the last ``window_bars`` bars ending at i gives
(``live_value``), once the sensor is warmed up — see the window rule in ``sensors.base``.

Why the C heap is tuned here
----------------------------
A batch over a history allocates and frees a few hundred arrays of one history's length
(TA-Lib outputs, numpy temporaries). glibc serves blocks above its mmap threshold with fresh
``mmap`` pages and hands freed heap space back to the kernel above its trim threshold, so
each such array costs page faults and zero-filling larger than the arithmetic on it (profiled
on the recorded 1m data: ~220 k page faults per million bars, 15-25 % of the batch time).
``keep_heap`` raises both thresholds once per process so freed arrays are reused from the
heap: the process keeps up to ``HEAP_TRIM_BYTES`` of freed memory instead of returning it at
once. Only processes that run batch mode (replays, research, benchmarks) call it; the live
engine and the sensor workers never do. Other C libraries (musl, macOS) are left as they are.

``keep_heap`` also stops numpy from asking for transparent huge pages (``madvise(MADV_HUGEPAGE)``
on every array of 4 MB or more, numpy's default on Linux). Where the kernel's THP mode is
``madvise`` (a common default, and this project's machines: Firecracker guests) each first touch
of such an array faults in and zeroes a 2 MB page, with compaction when none is free: measured
there, first touch of a fresh 200 MB array took 530-720 ms with the advice and ~85 ms without,
and the default-ensemble fast replay (1 symbol x 100 k bars, whose tracker and consensus arrays
are tens of MB each) ran in 1.4-1.5 s instead of 1.7-2.2 s. Batch mode touches each big array
a few times, so larger TLB reach buys less than the faults cost.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping

import numpy as np

from sensors import ta
from sensors.base import Bars, ParamValue, Params, SensorSpec

# glibc mallopt parameters (malloc.h) and the values batch mode sets.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_MMAP_BYTES = 32 * 1024 * 1024  # glibc's own ceiling: arrays below it (4 M bars) come from the heap
HEAP_TRIM_BYTES = 512 * 1024 * 1024  # freed memory kept for reuse before it is returned to the kernel
_heap_kept: bool | None = None


def keep_heap() -> bool:
    """Tune glibc's allocator for batch mode once per process (see the module docstring).

    Returns whether the thresholds are in place (False on a C library other than glibc)."""
    global _heap_kept
    if _heap_kept is None:
        _heap_kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError unless this is glibc
            except (OSError, AttributeError):
                return False
            _heap_kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_BYTES)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_BYTES))
            _no_huge_pages()
    return _heap_kept


def _no_huge_pages() -> None:
    """Turn off numpy's transparent huge page advice for this process (module docstring).

    The switch is numpy's own (``NUMPY_MADVISE_HUGEPAGE=0`` does the same before import); it
    moved from ``numpy.core`` to ``numpy._core`` in numpy 2, and a numpy without it is left as is."""
    for module in ("_core", "core"):
        switch = getattr(getattr(getattr(np, module, None), "multiarray", None), "_set_madvise_hugepage", None)
        if switch is not None:
            switch(False)
            return


_VALUES: dict[tuple[type, ParamValue], ParamValue] = {}


def interned(params: Params) -> dict[str, ParamValue]:
    """``params`` with equal values as one object each: ``sensors.ta`` shares a TA-Lib call
    between sensors only when they pass the very same objects (it keys arguments by identity),
    so e.g. three sensors' ``BBANDS(close, 20, 2.0, 2.0, 0)`` run once."""
    return {k: _VALUES.setdefault((type(v), v), v) for k, v in params.items()}


def run_batch(
    bars: Bars, sensors: Mapping[str, tuple[SensorSpec, Params]]
) -> dict[str, np.ndarray]:
    """Signals of every sensor (name → (spec, params)) for every bar of ``bars``."""
    keep_heap()
    with ta.shared():  # sensors built on the same indicator compute it once
        return {name: spec.compute(bars, interned(params)) for name, (spec, params) in sensors.items()}


def live_value(spec: SensorSpec, params: Params, bars: Bars, i: int, window: int | None = None) -> float:
    """What a live worker computes at bar ``i``: the sensor over its window ending at i
    (``window_bars`` unless a longer ``window`` is given, as a plan's shared windows are)."""
    end = i + 1
    start = max(0, end - max(window or 0, spec.window_bars(params)))
    window = Bars(*(col[start:end] for col in bars))
    return spec.last(window, params)
