"""Every sensor reading of a replay at once: batch signals mapped onto the 1m bars.

For each timeframe the plan runs, ``core.sensor_plan.batch_signals`` computes the signals of
the whole history (equal to the live pool after warm-up, tests/test_sensors_parity.py). The
engine's player, deciding 1m bar ``i``, sees for every timeframe the reading of the latest
bar of that timeframe that closed at or before bar ``i``'s close — ``visible[tf][i]`` here —
and the tracker records a timeframe's readings only on the 1m bar that closes it
(``fresh``). Nothing later than bar ``i``'s close is ever visible (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.history import CandleSeries, resample
from core.sensor_plan import PlannedSensor, SensorPlan, batch_signals
from core.types import Timeframe
from sensors.base import Bars, SensorSpec


@dataclass(frozen=True)
class TimeframeReadings:
    """One timeframe's sensors for one symbol, mapped onto the symbol's 1m bars."""

    timeframe: Timeframe
    sensors: tuple[PlannedSensor, ...]
    signals: dict[str, np.ndarray]  # per sensor, indexed by this timeframe's bars
    open_time: np.ndarray  # this timeframe's bar open times
    visible: np.ndarray  # per 1m bar: index of the latest closed bar of this timeframe (-1: none)
    fresh: np.ndarray  # per 1m bar: True when that bar closes a bar of this timeframe

    def signal_at(self, name: str, bars: np.ndarray) -> np.ndarray:
        """The visible signal of ``name`` at 1m bars ``bars`` (NaN when none is visible)."""
        j = self.visible[bars]
        values = self.signals[name][np.maximum(j, 0)]
        return np.where(j >= 0, values, np.nan)


def series_for(m1: CandleSeries, timeframe: Timeframe) -> CandleSeries:
    """The timeframe's closed bars built from the 1m history, as the engine's rings hold them."""
    return m1 if timeframe is Timeframe.M1 else resample(m1, timeframe)


def symbol_readings(m1: CandleSeries, plan: SensorPlan, specs: Mapping[str, SensorSpec]) -> dict[Timeframe, TimeframeReadings]:
    """Signals of every planned sensor for one symbol, with the 1m visibility map."""
    close_1m = m1.open_time + Timeframe.M1.ms
    out: dict[Timeframe, TimeframeReadings] = {}
    for tf in plan.timeframes:
        s = series_for(m1, tf)
        bars = Bars(s.open, s.high, s.low, s.close, s.volume)
        signals = batch_signals(plan, specs, tf, bars)
        closes = s.open_time + tf.ms
        visible = np.searchsorted(closes, close_1m, side="right") - 1
        vis_c = np.maximum(visible, 0)
        fresh = (visible >= 0) & (closes[vis_c] == close_1m)
        out[tf] = TimeframeReadings(tf, plan.sensors_for(tf), signals, s.open_time, visible.astype(np.int64), fresh)
    return out
