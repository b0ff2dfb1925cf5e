"""Which sensors run on which timeframe with which parameters, and how one bar is evaluated.

``build_plan`` turns the ``[sensors]`` settings and the registry into a ``SensorPlan``
(validated: an unknown sensor, parameter or timeframe is a ConfigError naming it).
``evaluate_bar`` is the one code path that computes a bar's signals from a ring buffer —
run by the pool's workers and, in-process, by benchmarks and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from config.settings import SensorSettings
from core.errors import ConfigError
from core.market_data import RingBuffer
from core.types import Timeframe
from sensors import ta
from sensors.base import Bars, Family, ParamValue, SensorSpec
from sensors.batch import keep_heap

# Windows up to this many bars (non-recursive sensors) are evaluated over one shared window, the
# longest of them; longer ones (recursive indicators settling) over another. A longer window
# never breaks parity (it only settles further), and sensors reading the same window share
# their TA-Lib calls (``sensors.ta``), whose fixed cost dominates a live bar. Candlestick
# patterns share no indicator (one CDL function each) and keep their own, shorter windows.
SHORT_WINDOW = 128

_PARAMS: dict[tuple[tuple[str, ParamValue], ...], dict[str, ParamValue]] = {}
_VALUES: dict[tuple[type, ParamValue], ParamValue] = {}


def _params(planned: PlannedSensor) -> dict[str, ParamValue]:
    """The sensor's keyword arguments; equal values are one interned object, so TA-Lib calls that
    ``sensors.ta`` keys by identity are shared between sensors with equal parameters."""
    found = _PARAMS.get(planned.params)
    if found is None:
        found = _PARAMS[planned.params] = {k: _VALUES.setdefault((type(v), v), v) for k, v in planned.params}
    return found


@dataclass(frozen=True, slots=True)
class PlannedSensor:
    """One sensor as it runs on one timeframe."""

    name: str
    params: tuple[tuple[str, ParamValue], ...]
    window: int
    warmup: int
    context: bool
    tp_fraction: float
    sl_fraction: float
    own_window: bool = False  # True: shares no indicator, so its window is not raised (patterns)


@dataclass(frozen=True, slots=True)
class SensorPlan:
    """Sensors per timeframe, in a fixed order (a worker's reply is indexed by it)."""

    by_timeframe: Mapping[Timeframe, tuple[PlannedSensor, ...]]
    max_window: int

    def sensors_for(self, timeframe: Timeframe) -> tuple[PlannedSensor, ...]:
        return self.by_timeframe.get(timeframe, ())

    @property
    def timeframes(self) -> tuple[Timeframe, ...]:
        return tuple(self.by_timeframe)


def enabled_names(settings: SensorSettings, specs: Mapping[str, SensorSpec]) -> set[str]:
    """Sensors switched on by ``enabled`` (names, families or "*") minus ``disabled``."""
    families = {f.value for f in Family}

    def expand(items: list[str], key: str) -> set[str]:
        out: set[str] = set()
        for item in items:
            if item == "*":
                out |= set(specs)
            elif item in families:
                out |= {n for n, s in specs.items() if s.family.value == item}
            elif item in specs:
                out.add(item)
            else:
                raise ConfigError(f"sensors.{key}: unknown sensor or family {item!r}")
        return out

    return expand(settings.enabled, "enabled") - expand(settings.disabled, "disabled")


def build_plan(settings: SensorSettings, specs: Mapping[str, SensorSpec]) -> SensorPlan:
    """Validate the settings against the registry and lay out what runs where."""
    for section, table in (("params", settings.params), ("sensor_timeframes", settings.sensor_timeframes),
                           ("tp_fraction_by_sensor", settings.tp_fraction_by_sensor),
                           ("sl_fraction_by_sensor", settings.sl_fraction_by_sensor)):
        for name in table:
            if name not in specs:
                raise ConfigError(f"sensors.{section}: unknown sensor {name!r}")
    enabled = enabled_names(settings, specs)
    kept = [Timeframe(tf) for tf in settings.timeframes]
    by_tf: dict[Timeframe, list[PlannedSensor]] = {tf: [] for tf in sorted(kept, key=lambda t: t.ms)}
    max_window = 0
    for name, spec in specs.items():
        if name not in enabled:
            continue
        try:
            params = spec.resolve(settings.params.get(name))
        except ValueError as exc:
            raise ConfigError(f"sensors.params.{name}: {exc}") from None
        window = spec.window_bars(params)
        if window > settings.window_bars:
            raise ConfigError(
                f"sensor {name} needs a {window}-bar window (warm-up + settle) but sensors.window_bars is "
                f"{settings.window_bars}: raise window_bars or shorten its periods"
            )
        wanted = settings.sensor_timeframes.get(name, list(spec.timeframes))
        for tf in (Timeframe(t) for t in wanted):
            if tf not in by_tf:
                continue  # a timeframe not kept in memory: the sensor does not run there
            tp = settings.tp_fraction_by_sensor.get(name, {}).get(tf.value, settings.tp_fraction.get(tf.value))
            sl = settings.sl_fraction_by_sensor.get(name, {}).get(tf.value, settings.sl_fraction.get(tf.value))
            if tp is None or sl is None:
                raise ConfigError(f"sensors.tp_fraction / sl_fraction: no value for timeframe {tf.value} ({name})")
            by_tf[tf].append(PlannedSensor(
                name, tuple(sorted(params.items())), window,
                spec.warmup_bars(params), spec.context, tp, sl,
                own_window=bool(spec.indicators) and all(i.startswith("CDL") for i in spec.indicators),
            ))
            max_window = max(max_window, by_tf[tf][-1].window)
    return SensorPlan({tf: _shared_windows(v) for tf, v in by_tf.items() if v}, max_window)


def _shared_windows(sensors: list[PlannedSensor]) -> tuple[PlannedSensor, ...]:
    """Each sensor's window raised to the longest one of its class (short or long, see SHORT_WINDOW)."""
    short = max((s.window for s in sensors if s.window <= SHORT_WINDOW and not s.own_window), default=0)
    long = max((s.window for s in sensors if s.window > SHORT_WINDOW and not s.own_window), default=0)
    return tuple(s if s.own_window else replace(s, window=short if s.window <= SHORT_WINDOW else long)
                 for s in sensors)


def batch_signals(plan: SensorPlan, specs: Mapping[str, SensorSpec], timeframe: Timeframe,
                  bars: Bars) -> dict[str, np.ndarray]:
    """Replay API: every sensor the plan runs on ``timeframe``, over a whole history at once.

    Equal (within 1e-9, after each warm-up) to what the pool returns bar by bar live.
    """
    keep_heap()  # batch mode's allocation pattern (see sensors.batch)
    with ta.shared():
        return {s.name: specs[s.name].compute(bars, _params(s)) for s in plan.sensors_for(timeframe)}


@dataclass(frozen=True, slots=True)
class BarResult:
    """Signals of one bar for the plan's sensors on one timeframe (NaN = missing)."""

    timeframe: Timeframe
    index: int
    open_time_ms: int
    signals: np.ndarray
    errors: tuple[tuple[int, str], ...]  # (position in the plan, "ExcType: message")
    stale: bool


_Step = tuple[Callable[..., Any], bool, dict[str, ParamValue], int, int]  # fn, is live twin, params, warm-up, window
_STEPS: dict[tuple[int, int], tuple[tuple[PlannedSensor, ...], Mapping[str, SensorSpec], tuple[_Step, ...]]] = {}


def _steps(sensors: tuple[PlannedSensor, ...], specs: Mapping[str, SensorSpec]) -> tuple[_Step, ...]:
    """What evaluating each planned sensor takes, resolved once per (plan, registry)."""
    key = (id(sensors), id(specs))
    hit = _STEPS.get(key)
    if hit is None or hit[0] is not sensors or hit[1] is not specs:
        steps = []
        for planned in sensors:
            spec = specs[planned.name]
            fn, is_live = (spec.live, True) if spec.live is not None else (spec.fn, False)
            steps.append((fn, is_live, _params(planned), planned.warmup, planned.window))
        if len(_STEPS) >= 64:  # one plan per process in practice; tests build many
            _STEPS.clear()
        hit = _STEPS[key] = (sensors, specs, tuple(steps))
    return hit[2]


def evaluate_bar(
    sensors: tuple[PlannedSensor, ...], specs: Mapping[str, SensorSpec], ring: RingBuffer,
    timeframe: Timeframe, index: int,
) -> BarResult:
    """Every planned sensor over its (shared) window ending at bar ``index`` of ``ring``.

    Each value is ``SensorSpec.last`` of that window (NaN until warmed up, clipped to [-1, 1]),
    with the spec lookups resolved once per plan. A sensor that raises gives NaN and an error
    entry; it never stops the others.
    """
    signals = np.full(len(sensors), math.nan)
    errors: list[tuple[int, str]] = []
    windows: dict[int, tuple[Bars, int]] = {}
    steps = _steps(sensors, specs)
    for step in steps:
        if step[4] not in windows:
            sl = ring.span(index, step[4])
            windows[step[4]] = (Bars(ring.open[sl], ring.high[sl], ring.low[sl], ring.close[sl], ring.volume[sl]),
                                sl.stop - sl.start)
    with ta.shared():  # sensors reading the same window share their indicators
        for k, (fn, is_live, params, warm, window) in enumerate(steps):
            bars, n = windows[window]
            if n <= warm:
                continue  # not warmed up: stays NaN (missing)
            try:
                value = float(fn(bars, **params) if is_live else fn(bars, **params)[-1])
            except Exception as exc:  # isolate: one broken sensor must not silence the others
                errors.append((k, f"{type(exc).__name__}: {exc}"[:300]))
                continue
            signals[k] = value if value != value else min(1.0, max(-1.0, value))
    stale = ring.overwritten(index, max((s.window for s in sensors), default=1))
    return BarResult(timeframe, index, ring.open_time(index), signals, tuple(errors), stale)
