"""The session process's memory policy (core.heap): the GC freeze and glibc's thresholds, in child processes (both are process-wide)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
from core.heap import freeze_startup_heap
kept = [[i] for i in range(50_000)]   # start-up state (tracked lists): lives for the whole session
frozen = freeze_startup_heap()
class Node:
    pass
gc.disable()                               # let the cycles pile up: one collection below finds them all
for _ in range(20_000):                    # later garbage in cycles: still collected
    a, b = Node(), Node()
    a.other, b.other = b, a
found = gc.collect()
gc.enable()
print(json.dumps({"frozen": frozen, "found": found, "count": gc.get_freeze_count(),
                  "full_walk": len(gc.get_objects(generation=2)), "kept": len(kept)}))
"""


def test_start_up_objects_are_frozen_and_later_cycles_still_collected() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=60,
                         check=True)
    r = json.loads(out.stdout)
    assert r["frozen"] == r["count"] >= 50_000  # the start-up objects left the collector's walks
    assert r["found"] >= 39_990  # the 20,000 two-node cycles made after the freeze (but the last, still named) were reclaimed
    assert r["full_walk"] < 10_000  # a full collection no longer walks the start-up heap


# A snapshot's pattern: a large block freed (glibc then raises its mmap threshold to that size
# by default), then a smaller multi-MB block. mallinfo2: ``arena`` = bytes of the main heap
# (non-mmapped), ``hblkhd`` = bytes in blocks with a mapping of their own.
BLOCKS = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
from core.heap import return_large_blocks
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
fixed = return_large_blocks() if sys.argv[2] == "fixed" else None
doc = bytes(8 << 20)                     # the snapshot document
del doc                                  # freed: by default glibc now serves blocks < 8 MB from the heap
keep = [bytes(600) for _ in range(2000)] # small long-lived blocks made meanwhile (pinning any hole)
before = libc.mallinfo2()
section = bytes(4 << 20)                 # the next refresh's section
during = libc.mallinfo2()
del section
after = libc.mallinfo2()
print(json.dumps({"fixed": fixed, "mapped_grew": during.hblkhd - before.hblkhd,
                  "heap_grew": during.arena - before.arena, "mapped_after": after.hblkhd - before.hblkhd}))
"""


def _blocks(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", BLOCKS, str(ROOT), mode], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="glibc's allocator only")
def test_large_blocks_get_their_own_mapping_even_after_a_larger_one_was_freed() -> None:
    default, fixed = _blocks("default"), _blocks("fixed")
    # glibc's default: after the 8 MB block went, the 4 MB one comes from the main heap, which grows
    assert default["mapped_grew"] == 0 and default["heap_grew"] >= 4 << 20
    # with the session's policy it gets a mapping of its own, the heap does not grow, and freeing
    # it hands the memory back to the kernel
    assert fixed["fixed"] is True
    assert fixed["mapped_grew"] >= 4 << 20 and fixed["heap_grew"] < 1 << 20
    assert fixed["mapped_after"] == 0
