"""Bursts: many symbols of one timeframe evaluated together equal batch mode for every sensor.

Real candles from ../shared/data, with price and volume scales far apart in one burst (BTC next
to DOGE, a BTC series × 1e-6 with volume × 1e5, a DOGE series × 1e5 with volume × 1e-4 — powers
of ten, so the burst's power-of-two scaling really rescales them), a symbol whose short history
keeps it out of the stack, and a sensor that raises for one symbol only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from config.settings import SensorSettings
from core.history import load_candles
from core.market_data import MarketData
from core.sensor_plan import build_plan, evaluate_bar, evaluate_burst
from core.types import Timeframe
from sensors.base import Bars, Family, SensorSpec
from sensors.registry import builtin_sensors

BUILTIN = builtin_sensors()
TOLERANCE = 1e-9
ROWS = 2_300
YOUNG_START = 1_000  # the young symbol's first bar: it has < a full window at the first checks
CHECKS = (1_300, 1_700, 1_900, 2_150, ROWS - 1)
MARKER_VOLUME = 4_242.0

# symbol → (file, first row, price factor, volume factor)
SOURCES = {
    "BTCUSDT": ("futures-2023/BTCUSDT-1m.csv.gz", 10_000, 1.0, 1.0),
    "DOGEUSDT": ("futures-2023/DOGEUSDT-1m.csv.gz", 20_000, 1.0, 1.0),
    "SOLUSDT": ("spot-2021/SOLUSDT-5m.csv.gz", 40_000, 1.0, 1.0),
    "MICROUSDT": ("futures-2023/BTCUSDT-1m.csv.gz", 30_000, 1e-6, 1e5),
    "HUGEUSDT": ("futures-2023/DOGEUSDT-1m.csv.gz", 5_000, 1e5, 1e-4),
    "YOUNGUSDT": ("futures-2023/ETHUSDT-1m.csv.gz", 1_000, 1.0, 1.0),
}


def _raise_on_marker(b: Bars) -> np.ndarray:
    """Raises when any symbol's last bar carries the marker volume (a bad input)."""
    if np.any(b.volume[-1] == MARKER_VOLUME):
        raise ValueError("marker bar")
    return np.zeros(len(b))


def _raise_on_marker_last(b: Bars) -> np.ndarray | float:
    if np.any(b.volume[-1] == MARKER_VOLUME):
        raise ValueError("marker bar")
    return np.zeros(b.close.shape[1:]) if b.close.ndim == 2 else 0.0


FAULTY = SensorSpec("burst_raises", Family.STRUCTURE, _raise_on_marker, {}, lambda p: 0, timeframes=("1m",),
                    live=_raise_on_marker_last, stacked=True)


def _bars(data_dir: Path, symbol: str) -> Bars:
    file, start, price, volume = SOURCES[symbol]
    s = load_candles(data_dir / file).slice(start, start + ROWS)
    return Bars(s.open * price, s.high * price, s.low * price, s.close * price, s.volume * volume), s.open_time


@pytest.fixture(scope="module")
def histories(data_dir: Path) -> dict[str, tuple[Bars, np.ndarray]]:
    return {symbol: _bars(data_dir, symbol) for symbol in SOURCES}


@pytest.fixture(scope="module")
def bursts(histories) -> Iterator[tuple[dict, list]]:
    """Feed every symbol bar by bar; at each check evaluate one burst of all of them."""
    # every sensor on 1m (context sensors included) so one burst covers the whole registry
    settings = SensorSettings(timeframes=["1m"], sensor_timeframes={n: ["1m"] for n in BUILTIN})
    plan = build_plan(settings, BUILTIN)
    sensors = plan.sensors_for(Timeframe.M1)
    md = MarketData(list(SOURCES), [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    out = []
    try:
        for i in range(ROWS):
            for symbol, (b, times) in histories.items():
                if symbol == "YOUNGUSDT" and i < YOUNG_START:
                    continue
                md.append_values(symbol, int(times[i]), b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
            if i in CHECKS:
                rings = [md.ring(s, Timeframe.M1) for s in SOURCES]
                indices = [md.last_index(s, Timeframe.M1) for s in SOURCES]
                out.append((i, evaluate_burst(sensors, BUILTIN, rings, Timeframe.M1, indices)))
        yield sensors, out
    finally:
        md.close()


def test_a_burst_equals_batch_for_every_sensor_and_symbol(histories, bursts) -> None:
    sensors, results = bursts
    assert len(sensors) == len(BUILTIN)
    first = {symbol: YOUNG_START if symbol == "YOUNGUSDT" else 0 for symbol in SOURCES}
    batch = {symbol: {p.name: BUILTIN[p.name].compute(Bars(*(c[first[symbol]:] for c in b)), dict(p.params))
                      for p in sensors} for symbol, (b, _) in histories.items()}
    stacked = 0
    for i, result in results:
        assert result.signals.shape == (len(SOURCES), len(sensors))
        assert not any(result.stale) and not any(result.errors)
        for s, symbol in enumerate(SOURCES):
            for k, p in enumerate(sensors):
                expected = batch[symbol][p.name][i - first[symbol]]
                got = result.signals[s, k]
                if math.isnan(expected):
                    assert math.isnan(got), f"{p.name} {symbol} bar {i}: burst {got}, batch NaN"
                else:
                    assert abs(got - expected) <= TOLERANCE, f"{p.name} {symbol} bar {i}: burst {got} batch {expected}"
                stacked += BUILTIN[p.name].stacked
    assert stacked > 0
