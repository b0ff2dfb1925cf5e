"""Batch mode: the same sensor functions over whole histories (replays, research).

``run_batch`` computes each sensor once over the full arrays (vectorised TA-Lib); the value
at bar i equals what a live evaluation over the last ``window_bars`` bars ending at i gives
(``live_value``), once the sensor is warmed up — see the window rule in ``sensors.base``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sensors import ta
from sensors.base import Bars, Params, SensorSpec


def run_batch(
    bars: Bars, sensors: Mapping[str, tuple[SensorSpec, Params]]
) -> dict[str, np.ndarray]:
    """Signals of every sensor (name → (spec, params)) for every bar of ``bars``."""
    with ta.shared():  # sensors built on the same indicator compute it once
        return {name: spec.compute(bars, params) for name, (spec, params) in sensors.items()}


def live_value(spec: SensorSpec, params: Params, bars: Bars, i: int, window: int | None = None) -> float:
    """What a live worker computes at bar ``i``: the sensor over its window ending at i
    (``window_bars`` unless a longer ``window`` is given, as a plan's shared windows are)."""
    end = i + 1
    start = max(0, end - max(window or 0, spec.window_bars(params)))
    window = Bars(*(col[start:end] for col in bars))
    return spec.last(window, params)
