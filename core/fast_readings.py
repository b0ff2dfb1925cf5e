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

    def matrix(self, names: list[str]) -> np.ndarray:
        """The signals of ``names`` as rows of one array, plus a last all-NaN column (the
        reading before this timeframe's first bar): ``matrix[:, visible_or_last]`` gathers
        every sensor of the timeframe at many 1m bars in one step (``gather``)."""
        out = np.full((len(names), len(self.open_time) + 1), np.nan)
        for row, name in enumerate(names):
            out[row, :-1] = self.signals[name]
        return out

    def gather(self, matrix: np.ndarray, bars: np.ndarray, out: np.ndarray) -> None:
        """``out[row, k]`` = the visible signal of row ``row`` of ``matrix`` at 1m bar ``bars[k]``
        (NaN when none is visible) — ``signal_at`` for many sensors at once."""
        j = self.visible[bars]
        j = np.where(j >= 0, j, matrix.shape[1] - 1)
        np.take(matrix, j, axis=1, out=out)

    def signal_at(self, name: str, bars: np.ndarray) -> np.ndarray:
        """The visible signal of ``name`` at 1m bars ``bars`` (NaN when none is visible)."""
        j = self.visible[bars]
        values = self.signals[name][np.maximum(j, 0)]
        return np.where(j >= 0, values, np.nan)


def series_for(m1: CandleSeries, timeframe: Timeframe) -> CandleSeries:
    """The timeframe's closed bars built from the 1m history, as the engine's rings hold them."""
    return m1 if timeframe is Timeframe.M1 else resample(m1, timeframe)


def symbol_readings(m1: CandleSeries, plan: SensorPlan, specs: Mapping[str, SensorSpec], *,
                    first_close_ms: int | None = None, history_bars: int | None = None) -> dict[Timeframe, TimeframeReadings]:
    """Signals of every planned sensor for one symbol, with the 1m visibility map.

    With ``first_close_ms`` (the first 1m close the replay reads) and ``history_bars`` (the
    engine's ``sensors.window_bars``), each timeframe is computed from ``history_bars`` bars
    before the first one read, not from the start of the file: every window the live pool
    evaluates lies inside that history, which is what batch parity needs (a recursive
    indicator has settled within its window); older bars only cost time.
    """
    close_1m = m1.open_time + Timeframe.M1.ms
    out: dict[Timeframe, TimeframeReadings] = {}
    for tf in plan.timeframes:
        s = series_for(m1, tf)
        if first_close_ms is not None and history_bars is not None:
            first = int(np.searchsorted(s.open_time + tf.ms, first_close_ms, side="right")) - 1
            lo = max(0, first - history_bars)
            if lo:
                s = _tail(s, lo)
        bars = Bars(s.open, s.high, s.low, s.close, s.volume)
        signals = batch_signals(plan, specs, tf, bars)
        closes = s.open_time + tf.ms
        visible = np.searchsorted(closes, close_1m, side="right") - 1
        vis_c = np.maximum(visible, 0)
        fresh = (visible >= 0) & (closes[vis_c] == close_1m)
        out[tf] = TimeframeReadings(tf, plan.sensors_for(tf), signals, s.open_time, visible.astype(np.int64), fresh)
    return out


def _tail(s: CandleSeries, lo: int) -> CandleSeries:
    from dataclasses import replace

    return replace(s, open_time=s.open_time[lo:], open=s.open[lo:], high=s.high[lo:], low=s.low[lo:],
                   close=s.close[lo:], volume=s.volume[lo:])
