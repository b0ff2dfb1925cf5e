"""The engine process's memory policy: the collector off the decision path, large blocks off the heap.

Garbage collector
-----------------
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

Bursts
------
The collector is also paused while the engine handles a burst (``pause_collector``, from the
first event of a burst to the end of the last one in flight): the readings are made with it
off already, but the rest of a burst — votes opened, decisions with their ranked votes, the
brackets' records — still made enough tracked objects for ~14 young collections and one
middle-generation collection (~1 ms each) per 50-symbol burst, and now and then a full one
(9 ms): 53 ms of collections inside the bursts of one 60 s 50-symbol paper session (timed with
``gc.callbacks``), every one of them on some symbol's decision path. Nothing
is skipped: the allocation count keeps growing while paused, so the first allocation after the
burst runs the collections it owes, between bursts.

C heap (glibc)
--------------
A snapshot that refreshes the tracker's section builds a few multi-megabyte byte strings with
50 symbols (the joined open votes ~3.8 MB, twice; the dedupe marks ~4.2 MB; the section
itself ~8.3 MB, which the engine keeps until the next refresh; the whole document ~8.3 MB),
frees all but one a moment later, and meanwhile the trading path keeps allocating small
long-lived blocks (vote-book heaps, player buffers). glibc serves a block from the heap once
its size is under the mmap threshold, and by default it raises that threshold to the size of
every mmapped block freed (up to 32 MB) — after the first snapshot, the 8 MB document — so
from then on these blocks come from the main heap. The small blocks made between two refreshes
settle in the holes they leave, the next refresh no longer fits and extends the heap, and the
freed holes stay resident: the engine's RSS rose in steps of 8–14 MB at each refresh
(``brk`` extensions traced to ``SensorTracker.to_json`` and the snapshot's ``dumps_plain``)
while its live data barely grew — +38.7 MB of heap for +9.7 MB in use, 29 MB of it free
inside the heap (``mallinfo2``, a 24 h-equivalent 50-symbol replay, bench/soak.py).

``return_large_blocks`` fixes the thresholds for the session process before it warms up:
blocks of ``LARGE_BLOCK_BYTES`` and more get a mapping of their own, handed back to the kernel
when freed, and the heap gives back free space above ``TRIM_BYTES`` at its top, as glibc does
before it starts adjusting (its own rule keeps the trim threshold at twice the mmap
threshold). The engine's trading path allocates nothing that large (traced: only the
snapshot path does, a few times a minute at most), so the extra ``mmap``/``munmap`` and page
faults fall on snapshots only. The sensor workers and batch mode tune the other way on
purpose (``core.sensor_pool``, ``sensors.batch``): they reuse large arrays at every burst.
musl and macOS: nothing to do, nothing done.
"""

from __future__ import annotations

import ctypes
import gc
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
LARGE_BLOCK_BYTES = 256 * 1024  # glibc's default mmap threshold is 128 KiB; the snapshot's blocks are ≥ 1 MB
TRIM_BYTES = 2 * LARGE_BLOCK_BYTES


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections.

    Returns how many objects were frozen (``gc.get_freeze_count``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def pause_collector() -> bool:
    """Stop automatic collections until ``resume_collector`` (see "Bursts" above).

    Returns whether this call stopped them (False: they were off already, leave them so)."""
    if not gc.isenabled():
        return False
    gc.disable()
    return True


def resume_collector() -> None:
    gc.enable()


def return_large_blocks() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (see "C heap" above).

    Returns whether they are in place (False on a C library other than glibc)."""
    return set_malloc_thresholds(LARGE_BLOCK_BYTES, TRIM_BYTES)


def set_malloc_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Pin glibc's mmap and trim thresholds for this process (each process of Casino tunes them
    for its own allocations: the session here, the sensor workers in ``core.sensor_pool``).

    Returns whether they are in place (False on a C library other than glibc: nothing done)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError unless this is glibc
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes))
