"""The live fast path: last-bar twins, shared TA-Lib calls and shared windows change no value.

- every sensor's ``live`` twin equals its array function's last value on real windows;
- TA-Lib calls memoised inside ``ta.shared()`` return the stored arrays (read-only) for the
  same inputs only, and batch mode with sharing equals each sensor computed alone;
- a plan's shared windows (longer than a sensor's own) keep live equal to batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import talib

from config.settings import SensorSettings
from core.sensor_plan import SHORT_WINDOW, build_plan
from core.types import Timeframe
from sensors import ta
from sensors.base import Bars
from sensors.batch import live_value, run_batch
from sensors.registry import builtin_sensors

from _sensor_data import SLICES, bars

BUILTIN = builtin_sensors()
# every sensor has a last-bar twin (a sensor without one would run its array function)
ARRAY_ONLY: set[str] = set()


def test_every_other_sensor_has_a_live_twin() -> None:
    assert {n for n, s in BUILTIN.items() if s.live is None} == ARRAY_ONLY


@pytest.mark.parametrize("name", sorted(set(BUILTIN) - ARRAY_ONLY))
def test_live_twin_equals_the_array_functions_last_value(name: str, data_dir: Path) -> None:
    spec = BUILTIN[name]
    assert spec.live is not None
    window, warm = spec.window_bars(), spec.warmup_bars()
    checked = 0
    for file, start, rows in SLICES:
        b = bars(data_dir, file, start, rows)
        for i in [*range(warm, warm + 40), *range(warm + 40, len(b), 13)]:
            win = Bars(*(col[max(0, i + 1 - window): i + 1] for col in b))
            expected = float(spec.fn(win, **spec.defaults)[-1])
            got = float(spec.live(win, **spec.defaults))
            if math.isnan(expected):
                assert math.isnan(got), f"{name} {file} bar {i}: twin {got}, array NaN"
            else:
                # 1e-10, inside the 1e-9 parity: batch sums a rolling window by a doubling tree
                # (sensors.volume.window_sum), the twin sums the last window directly; the order of
                # the additions differs by ~1e-12 on real prices.
                assert abs(got - expected) <= 1e-10, f"{name} {file} bar {i}: twin {got}, array {expected}"
            checked += 1
    assert checked > 500


def test_shared_talib_calls_are_computed_once_per_input_and_read_only(data_dir: Path) -> None:
    b = bars(data_dir, *SLICES[0])
    other = b.close.copy()
    with ta.shared():
        first = ta.EMA(b.close, 26)
        assert ta.EMA(b.close, 26) is first  # same inputs, same params: the stored array
        assert ta.EMA(b.close, 21) is not first
        assert ta.EMA(other, 26) is not first  # equal values but another array: computed again
        np.testing.assert_array_equal(first, talib.EMA(b.close, 26))
        upper, middle, lower = ta.BBANDS(b.close, 20, 2.0, 2.0, 0)
        with pytest.raises(ValueError):
            first[-1] = 0.0
        with pytest.raises(ValueError):
            middle[-1] = 0.0
        assert ta.BBANDS(b.close, 20, 2.0, 2.0, 0)[0] is upper
    outside = ta.EMA(b.close, 26)
    assert outside is not first and ta.EMA(b.close, 26) is not outside  # no scope: plain TA-Lib
    outside[-1] = 0.0  # and a fresh, writable array


def test_batch_with_shared_indicators_equals_each_sensor_alone(data_dir: Path) -> None:
    b = bars(data_dir, *SLICES[1])
    together = run_batch(b, {n: (s, s.defaults) for n, s in BUILTIN.items()})
    for name, spec in BUILTIN.items():
        np.testing.assert_array_equal(together[name], spec.compute(b), err_msg=name)


def test_plan_windows_are_shared_and_never_shorter_than_a_sensors_own() -> None:
    settings = SensorSettings(timeframes=["1m"])
    planned = build_plan(settings, BUILTIN).sensors_for(Timeframe.M1)
    windows = {p.window for p in planned if not p.own_window}
    assert len(windows) == 2 and min(windows) <= SHORT_WINDOW < max(windows)
    assert {p.name for p in planned if p.own_window} == {n for n in BUILTIN if n.startswith("cdl_")}
    for p in planned:
        assert p.window >= BUILTIN[p.name].window_bars(dict(p.params)), p.name


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_live_over_the_longest_window_equals_batch(name: str, data_dir: Path) -> None:
    """A shared window is longer than the sensor's own: parity must hold there too."""
    spec = BUILTIN[name]
    window = SensorSettings().window_bars
    file, start, rows = SLICES[2]
    b = bars(data_dir, file, start, rows)
    batch = spec.compute(b)
    for i in range(spec.warmup_bars(), len(b), 17):
        live = live_value(spec, spec.defaults, b, i, window)
        assert abs(live - batch[i]) <= 1e-9, f"{name} bar {i}: live {live} batch {batch[i]}"


def test_compute_clips_a_fresh_array_in_place_but_never_an_input_or_a_shared_indicator(data_dir: Path) -> None:
    from sensors.base import Family, SensorSpec

    b = bars(data_dir, *SLICES[0])
    close = b.close.copy()
    echo = SensorSpec("echo", Family.TREND, lambda bars: bars.close, {}, lambda p: 3)
    out = echo.compute(b)
    assert np.isnan(out[:3]).all() and np.all(out[3:] == 1.0)  # BTC prices clipped to 1
    np.testing.assert_array_equal(b.close, close)  # the input column is untouched
    with ta.shared():
        sma = ta.SMA(b.close, 5)
        shared = SensorSpec("shared", Family.TREND, lambda bars: ta.SMA(bars.close, 5), {}, lambda p: 4)
        assert np.all(shared.compute(b)[4:] == 1.0)
        np.testing.assert_array_equal(sma, talib.SMA(b.close, 5))  # the shared indicator is untouched


def test_the_memo_stays_within_its_byte_budget(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = bars(data_dir, *SLICES[0])
    monkeypatch.setattr(ta, "MEMO_BYTES", 3 * b.close.nbytes)  # room for three indicators
    with ta.shared():
        first = ta.EMA(b.close, 5)
        assert ta.EMA(b.close, 5) is first
        for period in (6, 7, 8):
            ta.EMA(b.close, period)
        assert ta.EMA(b.close, 5) is not first  # forgotten, recomputed, same values
        np.testing.assert_array_equal(ta.EMA(b.close, 5), first)
        assert ta._memo_bytes <= 3 * b.close.nbytes
    together = run_batch(b, {n: (s, s.defaults) for n, s in BUILTIN.items()})
    for name in ("ema_trend", "macd_hist", "bb_touch"):
        np.testing.assert_array_equal(together[name], BUILTIN[name].compute(b), err_msg=name)
