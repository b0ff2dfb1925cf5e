"""The engine process's garbage-collector policy: keep full collections off the decision path.

Every 50-symbol burst makes ~3,400 sensor readings (GC-tracked objects) that live until the
player has decided. CPython's collector counts allocations, so a burst runs several young
collections while the readings are alive; they survive into the older generations, and every
few bursts the oldest generation is collected — a walk over *every* tracked object the
process holds: modules, configuration, warm-up history, the trading state. That walk was the
tail of a burst: 50 symbols through the worker pool, p99 58 ms with p50 17 ms; with the
start-up heap frozen, p99 25 ms (bench/sensors.py, quiet 2-core machine).

``freeze_startup_heap`` runs once per session process (``core.session.run_session``), when the
engine is ready to trade: one full collection
(start-up garbage goes now, not during the first bursts), then ``gc.freeze()``, which moves
every surviving object to a permanent generation the collector never walks again. Objects
made afterwards (trades, votes, readings) are collected as usual, cycles included; what is
frozen is what the process keeps for its whole life anyway.

``return_large_blocks`` fixes glibc's mmap threshold for the session process. By default glibc
raises that threshold to the size of every large block freed (up to 32 MB), so after the
first few the engine's multi-megabyte buffers — each snapshot's encoded tracker section
(~4.5 MB with 50 symbols), report and status documents — come from the heap instead of their
own mappings, and a heap fragmented by them keeps its high-water mark: the engine's RSS rose in
steps over a 48 h-equivalent replay (bench/soak.py: +7.3 % while its structures were bounded).
A fixed threshold keeps blocks of ``LARGE_BLOCK_BYTES`` and more in mappings of their own,
returned to the kernel when freed. (musl, macOS: nothing to do, nothing done.)
"""

from __future__ import annotations

import ctypes
import gc
import sys

_M_MMAP_THRESHOLD = -3  # malloc.h
LARGE_BLOCK_BYTES = 256 * 1024  # glibc's own default before it starts adjusting


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections.

    Returns how many objects were frozen (``gc.get_freeze_count``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at ``LARGE_BLOCK_BYTES`` (see the module docstring).

    Returns whether it is in place (False on a C library other than glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError unless this is glibc
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
