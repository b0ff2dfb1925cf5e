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
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections.

    Returns how many objects were frozen (``gc.get_freeze_count``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
