"""Which sensors run on which timeframe with which parameters, and how one bar is evaluated.

``build_plan`` turns the ``[sensors]`` settings and the registry into a ``SensorPlan``
(validated: an unknown sensor, parameter or timeframe is a ConfigError naming it).
``evaluate_bar`` computes one symbol's bar from its ring buffer; ``evaluate_burst`` computes
the bars of many symbols of one timeframe at once (what the pool's workers run; in-process,
benchmarks and tests run both).

A burst (see ``evaluate_burst``)
--------------------------------
TA-Lib's fixed cost per call and Python's per-sensor cost dominate a live bar, so a burst
evaluates each sensor once for all its symbols: their windows are copied into (S, W) matrices
(one per column, C-contiguous) and the twins get Bars of the transposed (W, S) views, which
``sensors.ta`` hands to TA-Lib as one flattened buffer. A recursive indicator's segment then
starts from the previous symbol's state, a start-dependence the window rule bounds relative
to the price scale — so each symbol's open/high/low/close are first multiplied by the power of
two that puts its last close in [1, 2), and its volume by the one that puts its largest
volume there. Multiplying by a power of two is exact in binary floating point, and so is
every sum, difference, product, quotient and square root of scaled values: TA-Lib on a scaled
symbol gives exactly the scaled results, and every signal built from ratios, signs and
comparisons is unchanged. The one absolute constant in price units, the tie rule's floor
(``shape.TIE_ABS``), is applied in the symbol's own units: twins pass price-unit values through
``shape.price1``, which divides this burst's factors back out (exact) before a tie is judged.
Other constants act on scale-free quantities (NATR's 1e-6 floor, band thresholds on
oscillators) or on zero tests (``den != 0``, ``volume > 0``) that scaling preserves. A sensor
whose twin cannot take stacked windows (``SensorSpec.stacked`` False: plugins) runs symbol by
symbol on its unscaled window.

Sensors are grouped by their own windows (``burst_classes``): one window per group, the
longest of its members, because a burst's cost is TA-Lib's work per bar (S × window), not
its call count. A symbol whose ring does not hold a group's window yet (start-up) evaluates
that group's sensors alone, over all its bars (exactly batch mode), and joins the groups whose
windows it holds; a stacked sensor that raises is retried symbol by symbol, so one bad symbol
never blanks the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from config.settings import SensorSettings
from core.errors import ConfigError
from core.market_data import RingBuffer
from core.types import Timeframe
from sensors import shape, ta
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
    if ring.volume[ring.span(index, 1)][0] == 0.0:  # no trades: no votes (``sensors.base``)
        np.copyto(signals, 0.0, where=signals == signals)
    stale = ring.overwritten(index, max((s.window for s in sensors), default=1))
    return BarResult(timeframe, index, ring.open_time(index), signals, tuple(errors), stale)


# ------------------------------------------------------------------------------ bursts

# Sensors whose own windows are within this ratio of a group's longest share that window (and
# their TA-Lib calls); the next group starts below it. Sharing saves a call (≈ 2 µs), a longer
# window costs S × extra bars of TA-Lib work: at a burst's S ≈ 25 the work dominates.
BURST_WINDOW_RATIO = 1.25
# Fewest symbols worth stacking: numpy calls on one value per symbol cost ~10× Python's on one
# float, a fixed ~4 ms per burst that pays off from about 4 symbols (measured CPU per burst:
# 2 symbols 5.4 ms stacked vs 3.5 one by one; 4: 5.5 vs 8.6; 8: 7.1 vs 13.6; 25: 9.5 vs 45).
BURST_MIN_SYMBOLS = 4
_PRICE_ROWS = 4  # open, high, low, close in RingBuffer.block; volume is row 4


@dataclass(frozen=True, slots=True)
class BurstResult:
    """Signals of one bar per symbol for the plan's sensors on one timeframe (NaN = missing)."""

    timeframe: Timeframe
    indices: tuple[int, ...]
    open_times: tuple[int, ...]
    signals: np.ndarray  # (symbols, sensors), float64
    errors: tuple[tuple[tuple[int, str], ...], ...]  # per symbol: (position in the plan, "ExcType: message")
    stale: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class _Group:
    window: int
    members: tuple[int, ...]  # positions in the plan


@dataclass(frozen=True, slots=True)
class _BurstPlan:
    groups: tuple[_Group, ...]  # stacked sensors, longest window first
    alone: tuple[int, ...]  # positions of sensors evaluated symbol by symbol
    window: int  # longest group window: a symbol needs this many bars to join a burst


_BURSTS: dict[tuple[int, int], tuple[tuple[PlannedSensor, ...], Mapping[str, SensorSpec], _BurstPlan]] = {}


def burst_classes(windows: Mapping[int, int]) -> list[tuple[int, list[int]]]:
    """Group positions by window (position → own window): from the longest down, each group takes
    every window ≥ its longest / BURST_WINDOW_RATIO. Returns (group window, positions) pairs."""
    order = sorted(windows, key=lambda k: -windows[k])
    groups: list[tuple[int, list[int]]] = []
    for k in order:
        if groups and windows[k] * BURST_WINDOW_RATIO >= groups[-1][0]:
            groups[-1][1].append(k)
        else:
            groups.append((windows[k], [k]))
    return groups


def _burst_plan(sensors: tuple[PlannedSensor, ...], specs: Mapping[str, SensorSpec]) -> _BurstPlan:
    key = (id(sensors), id(specs))
    hit = _BURSTS.get(key)
    if hit is None or hit[0] is not sensors or hit[1] is not specs:
        own = {k: specs[p.name].window_bars(_params(p)) for k, p in enumerate(sensors)
               if specs[p.name].stacked and specs[p.name].live is not None}
        groups = tuple(_Group(w, tuple(members)) for w, members in burst_classes(own))
        alone = tuple(k for k in range(len(sensors)) if k not in own)
        plan = _BurstPlan(groups, alone, max((g.window for g in groups), default=1))
        if len(_BURSTS) >= 64:
            _BURSTS.clear()
        hit = _BURSTS[key] = (sensors, specs, plan)
    return hit[2]


def evaluate_burst(
    sensors: tuple[PlannedSensor, ...], specs: Mapping[str, SensorSpec], rings: Sequence[RingBuffer],
    timeframe: Timeframe, indices: Sequence[int],
) -> BurstResult:
    """Every planned sensor for bar ``indices[i]`` of ``rings[i]``, all symbols together.

    The same values as ``evaluate_bar`` per symbol (within the window rule's 1e-9; see the
    module docstring). Each window group stacks the symbols whose rings hold its window; a
    symbol with fewer bars (start-up) evaluates that group's sensors alone, over all its bars
    (exactly batch mode), as does every symbol of a group fewer than ``BURST_MIN_SYMBOLS`` can join.
    """
    n = len(rings)
    plan = _burst_plan(sensors, specs)
    have = [min(indices[i] + 1, rings[i].capacity) for i in range(n)]  # bars a window can reach
    smallest = min((g.window for g in plan.groups), default=0)
    joined = [i for i in range(n) if plan.groups and have[i] >= smallest]
    if len(joined) < BURST_MIN_SYMBOLS:  # too little to share: the single-symbol path
        results = [evaluate_bar(sensors, specs, rings[i], timeframe, indices[i]) for i in range(n)]
        return BurstResult(timeframe, tuple(indices), tuple(r.open_time_ms for r in results),
                           np.array([r.signals for r in results]).reshape(n, len(sensors)),
                           tuple(r.errors for r in results), tuple(r.stale for r in results))
    signals = np.full((n, len(sensors)), math.nan)
    errors: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    joined_set = set(joined)
    for i in range(n):
        if i not in joined_set:  # too few bars for any group: the single-symbol path
            r = evaluate_bar(sensors, specs, rings[i], timeframe, indices[i])
            signals[i] = r.signals
            errors[i].extend(r.errors)
    steps = _steps(sensors, specs)
    windows: dict[tuple[int, int], tuple[Bars, int]] = {}

    def alone(i: int, k: int) -> float:
        """Sensor ``k`` for symbol ``i`` over its own unscaled window (the plan's, as ``evaluate_bar``)."""
        fn, is_live, params, warm, window = steps[k]
        found = windows.get((i, window))
        if found is None:  # one Bars object per symbol and length: sensors share their TA-Lib calls
            ring = rings[i]
            sl = ring.span(indices[i], window)
            found = windows[(i, window)] = (
                Bars(ring.open[sl], ring.high[sl], ring.low[sl], ring.close[sl], ring.volume[sl]), sl.stop - sl.start)
        if found[1] <= warm:
            return math.nan  # not warmed up: missing
        try:
            value = float(fn(found[0], **params) if is_live else fn(found[0], **params)[-1])
        except Exception as exc:  # isolate: one broken sensor must not silence the others
            errors[i].append((k, f"{type(exc).__name__}: {exc}"[:300]))
            return math.nan
        return value

    stack, scales = _stack([rings[i] for i in joined], [indices[i] for i in joined], [have[i] for i in joined],
                           min(plan.window, max(have[i] for i in joined)))
    out = np.full((len(sensors), len(joined)), math.nan)  # sensor-major: one row per sensor
    later: list[tuple[int, list[int]]] = []  # (sensor, positions in ``joined``) evaluated alone
    with ta.shared():  # sensors of one group read the same window objects: they share indicators
        for group in plan.groups:
            rows = [j for j, i in enumerate(joined) if have[i] >= group.window]
            if len(rows) < BURST_MIN_SYMBOLS:
                later.extend((k, list(range(len(joined)))) for k in group.members)
                continue
            others = [j for j in range(len(joined)) if have[joined[j]] < group.window]
            every = len(rows) == len(joined)
            bars = _group_bars(stack if every else stack[:, rows], group.window)
            with shape.price_scale(scales if every else scales[rows]):
                for k in group.members:
                    fn, _, params, _, _ = steps[k]
                    try:
                        values = fn(bars, **params)
                        if every:
                            out[k] = values  # broadcast: a twin may answer one constant
                        else:
                            out[k, rows] = values
                    except Exception:  # retried symbol by symbol: only the symbols that fail go missing
                        later.append((k, rows))
            if others:
                later.extend((k, others) for k in group.members)
        later.extend((k, list(range(len(joined)))) for k in plan.alone)
        for k, positions in later:
            for j in positions:
                out[k, j] = alone(joined[j], k)
    np.clip(out, -1.0, 1.0, out=out)  # NaN stays NaN
    no_trades = stack[4, :, -1] == 0.0  # bars without trades read 0 (``sensors.base``)
    if no_trades.any():
        silent = out[:, no_trades]
        np.copyto(silent, 0.0, where=silent == silent)
        out[:, no_trades] = silent
    signals[joined] = out.T
    longest = max((s.window for s in sensors), default=1)
    return BurstResult(
        timeframe, tuple(indices), tuple(rings[i].open_time(indices[i]) for i in range(n)), signals,
        tuple(tuple(e) for e in errors), tuple(rings[i].overwritten(indices[i], longest) for i in range(n)),
    )


def _stack(rings: Sequence[RingBuffer], indices: Sequence[int], have: Sequence[int],
           window: int) -> tuple[np.ndarray, np.ndarray]:
    """(5, S, window) copy of the symbols' last bars (open, high, low, close, volume), right-aligned:
    a symbol with fewer bars (``have``) leaves the start of its row unset — only groups whose
    window it holds read it. Each symbol is scaled by its own powers of two (see the module
    docstring): exact, and it puts every symbol's prices and volumes on one scale so no
    recursive indicator carries a symbol's magnitude into the next one's segment. Also returns
    the (S,) price factors."""
    stack = np.empty((5, len(rings), window))
    largest = np.empty(len(rings))
    for s, (ring, index, bars) in enumerate(zip(rings, indices, have, strict=True)):
        n = min(bars, window)
        block = stack[:, s, window - n:]
        block[:] = ring.block(ring.span(index, n))
        largest[s] = block[4].max()
    _, exponent = np.frexp(stack[3, :, -1])  # close = m × 2**e with m in [0.5, 1)
    scales = np.ldexp(1.0, 1 - exponent)
    stack[:_PRICE_ROWS] *= scales[None, :, None]
    _, exponent = np.frexp(largest)
    stack[4] *= np.where(largest > 0, np.ldexp(1.0, 1 - exponent), 1.0)[:, None]
    return stack, scales


def _group_bars(stack: np.ndarray, window: int) -> Bars:
    """Bars of (window, S) columns: transposed views of C-contiguous (S, window) matrices."""
    cols = stack if window == stack.shape[2] and stack.flags.c_contiguous else \
        np.ascontiguousarray(stack[:, :, -window:])
    return Bars(cols[0].T, cols[1].T, cols[2].T, cols[3].T, cols[4].T)
