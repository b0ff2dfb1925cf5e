"""What a sensor is: a pure, causal function of OHLCV arrays, plus the metadata to run it.

A sensor function takes ``Bars`` (five float64 arrays, oldest first) and keyword parameters
and returns one float64 signal per bar in [-1, 1]: sign = side, magnitude = strength,
0 = no vote, NaN = not warmed up. The value at bar i reads bars ≤ i only, so the same
function serves a live window and a whole history (batch mode).

The window rule (why live equals batch)
---------------------------------------
Live evaluation computes a sensor over the last ``window_bars(params)`` bars and keeps the
last value; batch mode computes it once over the whole history. For non-recursive math
(rolling sums, max/min, candlestick shapes) the two agree as soon as the window covers the
warm-up. Recursive math (EMA, Wilder smoothing in RSI/ATR/ADX, MACD, SAR) depends on where
computation starts; the difference shrinks by a factor (1 - alpha) per bar. Each sensor
therefore declares ``settle(params)``: extra bars after the warm-up for that difference to
fall below ``SETTLE_FACTOR`` (``ema_settle``/``wilder_settle`` below, summed over chained
stages). With ``window = warm-up + settle + 1`` live and batch agree within 1e-9 (tested on
real data for every sensor). When fewer bars than the window exist, live computes over all
of them — exactly what batch computes at that bar — so parity also holds during start-up.

Bars without trades
-------------------
A bar whose volume is 0 (exchange maintenance, a dead market) carries no information, and
every sensor reads 0 ("no vote") on it (NaN stays NaN). It is also where the window rule
alone cannot hold: while prices stand still, a Wilder or EMA state decays at the very rate
its start-dependence does (RSI(2)'s gains and losses halve each bar, and so does the
difference), so that difference stops shrinking relative to the value, and a 17-bar outage
is enough to push RSI(2) beyond 1e-9. When trading resumes, the new bars dominate the state
again. (Found by ``bench/parity_audit.py``, which runs the whole recorded histories.)

This package imports nothing from the rest of Casino: timeframes are plain strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import NamedTuple

import numpy as np

ParamValue = float | int | str | bool
Params = Mapping[str, ParamValue]

# The start-dependent part of a recursive indicator must decay below this factor of its
# initial size before a live value is trusted to equal the batch value (see module docstring).
SETTLE_FACTOR = 1e-13
VOTER_TIMEFRAMES = ("1m", "5m", "15m", "1h")
CONTEXT_TIMEFRAMES = ("1h", "4h")


class Family(str, Enum):
    """Sensor families (one module each)."""

    TREND = "trend"
    MOMENTUM = "momentum"
    VOLATILITY = "volatility"
    VOLUME = "volume"
    PATTERNS = "patterns"
    STRUCTURE = "structure"
    REGIME = "regime"


class Bars(NamedTuple):
    """OHLCV columns of one symbol × timeframe, oldest first, all float64 and equally long."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]  # number of bars, not of columns
        return int(self.close.shape[0])

    def tail(self, n: int) -> Bars:
        """The last ``n`` bars (views, no copy)."""
        return Bars(self.open[-n:], self.high[-n:], self.low[-n:], self.close[-n:], self.volume[-n:])

    def head(self, n: int) -> Bars:
        """The first ``n`` bars (views, no copy)."""
        return Bars(self.open[:n], self.high[:n], self.low[:n], self.close[:n], self.volume[:n])


SensorFn = Callable[..., np.ndarray]
LiveFn = Callable[..., float]
BarsFn = Callable[[Params], int]


def ema_settle(period: int) -> int:
    """Bars for an EMA's (alpha = 2/(n+1)) start-dependence to decay below SETTLE_FACTOR."""
    return math.ceil(math.log(SETTLE_FACTOR) / math.log(1.0 - 2.0 / (period + 1)))


def wilder_settle(period: int) -> int:
    """Bars for Wilder smoothing (alpha = 1/n: RSI, ATR, ADX, CMO) to settle."""
    return math.ceil(math.log(SETTLE_FACTOR) / math.log(1.0 - 1.0 / period))


def _zero(_: Params) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A registered sensor: its function, defaults and the metadata the runtime needs."""

    name: str
    family: Family
    fn: SensorFn
    defaults: Mapping[str, ParamValue]
    warmup: BarsFn  # leading bars whose signal is NaN (params → bars)
    settle: BarsFn = _zero  # extra bars a recursive indicator needs (see module docstring)
    timeframes: tuple[str, ...] = VOTER_TIMEFRAMES
    context: bool = False  # context sensors feed the player's filter instead of voting
    description: str = ""
    indicators: tuple[str, ...] = field(default=())  # TA-Lib functions it is built on
    # The signal at the last bar only (same params as ``fn``): what a live worker needs, without
    # shaping the whole window with numpy. Must equal ``fn(bars)[-1]`` (tested for every sensor).
    live: LiveFn | None = None
    # True: ``live`` also takes a burst — columns of shape (W, S), one per symbol, each symbol's
    # prices and volume scaled by its own power of two — and returns the S last-bar signals, which
    # must not depend on that scaling (see ``core.sensor_plan.evaluate_burst``). False: the
    # sensor is evaluated symbol by symbol.
    stacked: bool = False

    def resolve(self, overrides: Mapping[str, ParamValue] | None = None) -> dict[str, ParamValue]:
        """Defaults updated with ``overrides``; unknown names or wrong types raise ValueError."""
        params = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                allowed = ", ".join(sorted(self.defaults)) or "none"
                raise ValueError(f"sensor {self.name}: unknown parameter {key!r} (allowed: {allowed})")
            default = self.defaults[key]
            if isinstance(default, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) and isinstance(default, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
                value = int(value) if ok else value
            elif isinstance(default, float):
                ok = isinstance(value, int | float)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ValueError(
                    f"sensor {self.name}: parameter {key!r} must be {type(default).__name__}, got {value!r}"
                )
            params[key] = value
        return params

    def warmup_bars(self, params: Params | None = None) -> int:
        return int(self.warmup(params if params is not None else self.defaults))

    def window_bars(self, params: Params | None = None) -> int:
        """Bars a live evaluation needs so that it equals batch mode (the window rule)."""
        p = params if params is not None else self.defaults
        return int(self.warmup(p)) + int(self.settle(p)) + 1

    def compute(self, bars: Bars, params: Params | None = None) -> np.ndarray:
        """Signals for every bar of ``bars``: clipped to [-1, 1], NaN before the warm-up."""
        p = params if params is not None else self.defaults
        warm = int(self.warmup(p))
        if len(bars) <= warm:  # nothing can be warmed up: skip the math
            return np.full(len(bars), np.nan)
        raw = self.fn(bars, **p)
        out = np.asarray(raw, dtype=np.float64)
        if out.shape != bars.close.shape:
            raise ValueError(f"sensor {self.name} returned shape {out.shape} for {len(bars)} bars")
        # Clip in place when the sensor handed back a fresh array of its own (saves a 1M-bar
        # copy per sensor in batch mode); never into an input column or a shared (read-only,
        # see sensors.ta) indicator. An array owning its memory is none of the columns' (they
        # are older than it), so only views are checked against them: the check is most of
        # this wrapper's cost over a short history (50 symbols x 5 timeframes x 278 sensors).
        if out is raw and not (out.flags.writeable and (
                out.flags.owndata and all(out is not col for col in bars)
                or not any(np.may_share_memory(out, col) for col in bars))):
            out = out.copy()
        _clip(out, -1.0, 1.0, out=out)  # keeps NaN
        silent = _bars_without_trades(bars.volume)
        if silent.size:
            silent = silent[out[silent] == out[silent]]  # NaN stays NaN
            out[silent] = 0.0
        out[:warm] = np.nan
        return out

    def last(self, bars: Bars, params: Params | None = None) -> float:
        """The signal at the last bar of ``bars`` (NaN when not warmed up)."""
        p = params if params is not None else self.defaults
        if len(bars) <= int(self.warmup(p)):
            return math.nan
        # Same value as compute(...)[-1] without clipping the whole window (live hot path).
        value = float(self.live(bars, **p) if self.live is not None else self.fn(bars, **p)[-1])
        if math.isnan(value):
            return value
        return 0.0 if bars.volume[-1] == 0.0 else min(1.0, max(-1.0, value))


# np.clip's ufunc without the method dispatch around it (one call per sensor of a batch); the
# same values as np.maximum then np.minimum, NaN kept
_clip = np.clip if getattr(np, "_core", None) is None else getattr(np._core.umath, "clip", np.clip)

_silent_memo: tuple[np.ndarray, np.ndarray] | None = None


def _bars_without_trades(volume: np.ndarray) -> np.ndarray:
    """Indices of the bars whose volume is 0 (see "Bars without trades"), found once per volume
    array: batch mode asks for every sensor of a history (72 full-length compares otherwise).
    Keyed by the array object itself, which the memo keeps alive so its identity stays unique."""
    global _silent_memo
    memo = _silent_memo
    if memo is not None and memo[0] is volume:
        return memo[1]
    found = np.flatnonzero(volume == 0.0)
    _silent_memo = (volume, found)
    return found


_DEFINED: dict[str, SensorSpec] = {}


def sensor(
    name: str,
    family: Family,
    *,
    params: Mapping[str, ParamValue] | None = None,
    warmup: BarsFn,
    settle: BarsFn = _zero,
    timeframes: tuple[str, ...] | None = None,
    context: bool = False,
    indicators: tuple[str, ...] = (),
) -> Callable[[SensorFn], SensorFn]:
    """Decorator registering a sensor function (the docstring's first line becomes its description)."""

    def wrap(fn: SensorFn) -> SensorFn:
        if name in _DEFINED:
            raise ValueError(f"sensor {name!r} is defined twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _DEFINED[name] = SensorSpec(
            name=name,
            family=family,
            fn=fn,
            defaults=dict(params or {}),
            warmup=warmup,
            settle=settle,
            timeframes=timeframes or (CONTEXT_TIMEFRAMES if context else VOTER_TIMEFRAMES),
            context=context,
            description=doc[0] if doc else "",
            indicators=indicators,
        )
        return fn

    return wrap


def live(name: str, *, stacked: bool = False) -> Callable[[LiveFn], LiveFn]:
    """Decorator registering the last-bar twin of sensor ``name`` (see ``SensorSpec.live``).

    Called with the same ``Bars`` and params as the sensor, more than ``warmup`` bars long.
    ``stacked``: the twin also evaluates a burst of symbols at once (``SensorSpec.stacked``).
    """

    def wrap(fn: LiveFn) -> LiveFn:
        spec = _DEFINED[name]
        if spec.live is not None:
            raise ValueError(f"sensor {name!r} has two live twins")
        _DEFINED[name] = replace(spec, live=fn, stacked=stacked)
        return fn

    return wrap


def defined() -> dict[str, SensorSpec]:
    """Every sensor defined so far (the registry imports the family modules first)."""
    return dict(_DEFINED)
