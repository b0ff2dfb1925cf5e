"""The session process's GC policy (core.heap), in a child process: freezing is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
