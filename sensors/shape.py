"""Small vectorised helpers that turn indicator values into signals.

All helpers propagate NaN (an input that is not warmed up gives a NaN signal, never a
false 0 vote) and look only backwards (``prev`` shifts towards the future, never back).
"""

from __future__ import annotations

import math

import numpy as np

NAN = np.nan

# Two values closer than this (relative) count as equal. Prices sit on a tick grid, so exact
# ties (close == SMA, %K == %D) are common; TA-Lib's running sums round differently
# depending on where a computation starts, and without this a tie could read as a cross in
# batch mode but not in a live window. Real differences are far larger than 1e-9.
TIE = 1e-9
TIE_ABS = 1e-12  # for oscillators sitting at exactly 0


def prev(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` delayed by ``k`` bars (NaN for the first ``k``)."""
    out = np.empty(x.shape, dtype=np.float64)
    k = min(k, x.shape[0])
    out[:k] = NAN
    out[k:] = x[: x.shape[0] - k]
    return out


def nan_if(out: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """``out`` with NaN wherever any input is NaN (in place; one mask, no fancy indexing)."""
    if not inputs:
        return out
    bad = np.isnan(inputs[0])
    for x in inputs[1:]:
        bad |= np.isnan(x)
    np.copyto(out, NAN, where=bad)
    return out


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (flat bars, zero volume) and NaN where either is NaN."""
    out = num * 0.0  # NaN where num is NaN, else 0
    np.divide(num, den, out=out, where=den != 0)  # den NaN → NaN; den 0 → stays 0
    return out


def ratio(num: np.ndarray, den: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``safe_div`` with a plain division (a masked one is several times slower): 0 where
    den == 0, NaN where either is NaN. ``out`` may be ``num`` (computed in place)."""
    zero = np.flatnonzero(den == 0)  # rare: flat bars, zero volume
    kept = num[zero] * 0.0  # what safe_div leaves there: 0, or NaN for a NaN numerator
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.divide(num, den, out=out)
    out[zero] = kept
    return out


def squash_(x: np.ndarray) -> np.ndarray:
    """``squash`` in place, for an array the caller owns."""
    return np.tanh(x, out=x)


def _tie_threshold(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """(|a| + |b|) * TIE + TIE_ABS, the distance under which a - b counts as a tie (``diff``)."""
    threshold = np.abs(a)
    threshold += np.abs(b)
    threshold *= TIE
    threshold += TIE_ABS
    return threshold


def diff(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a - b, with differences inside the tie tolerance snapped to exactly 0 (NaN kept)."""
    d = a - b
    threshold = _tie_threshold(a, b)
    np.copyto(d, 0.0, where=np.abs(d) <= threshold)
    return d


def _largest(x: np.ndarray | float) -> float:
    """The largest |x| (NaN ignored; NaN when every value is NaN)."""
    if not isinstance(x, np.ndarray):
        return abs(x)
    return float(max(np.fmax.reduce(x), -np.fmin.reduce(x))) if x.size else 0.0


def _sides(a: np.ndarray, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a - b, diff(a, b) > 0, diff(a, b) < 0) without building the snapped difference.

    Past a tie means beyond the bar's threshold (``_tie_threshold``). Every bar's threshold is
    at most the one of the largest |a| and |b| (rounding is monotone), so bars farther than
    that from 0 are decided by their sign alone; only the few nearer ones (and NaN) get their
    own threshold — the same arithmetic as ``diff`` there, so the same bars either way.
    """
    d = np.subtract(a, b)
    bound = (_largest(a) + _largest(b)) * TIE + TIE_ABS  # NaN if a or b is all NaN: all near
    pos = d > bound
    neg = d < -bound
    near = np.flatnonzero(~(pos | neg))
    if near.size:
        dn = d[near]
        threshold = _tie_threshold(a[near], b[near] if isinstance(b, np.ndarray) else b)
        pos[near] = dn > threshold
        np.negative(threshold, out=threshold)
        neg[near] = dn < threshold
    return d, pos, neg


def above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """``diff(a, b) > 0``: a beyond b by more than a tie (see ``_sides``)."""
    return _sides(a, b)[1]


def below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """``diff(a, b) < 0``, as ``above``."""
    return _sides(a, b)[2]


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 where ``a`` crosses above ``b`` at this bar, -1 where it crosses below, else 0.

    With s = sign(a - b) (ties = 0): a cross is a bar whose s differs from the previous
    one and is not 0, e.g. -1 → +1 or 0 → +1; +1 → 0 is not a cross (yet). NaN where this
    or the previous bar is NaN. Computed on bools: an up-cross is "above now, not above
    before" (s = +1 and the previous s ≠ +1), a down-cross likewise.
    """
    d, pos, neg = _sides(a, b)
    out = np.empty(d.shape[0])
    if d.shape[0] == 0:
        return out
    out[0] = NAN  # no previous bar
    up = pos[1:] > pos[:-1]  # True after False
    down = neg[1:] > neg[:-1]
    np.subtract(up, down, out=out[1:], dtype=np.float64)
    missing = np.isnan(d)
    np.copyto(out[1:], NAN, where=missing[1:] | missing[:-1])
    return out


def squash(x: np.ndarray) -> np.ndarray:
    """tanh keeps strength monotone while bounding it to (-1, 1)."""
    return np.tanh(x)


def band(x: np.ndarray, low: float, high: float, span: float) -> np.ndarray:
    """Mean-reversion vote of an oscillator: + below ``low``, - above ``high``, 0 between;
    strength grows linearly over ``span`` units beyond the threshold (continuous at the
    thresholds, so no tie handling is needed; NaN propagates)."""
    below_low = np.subtract(low, x)
    np.maximum(below_low, 0.0, out=below_low)
    above_high = np.subtract(x, high)
    np.maximum(above_high, 0.0, out=above_high)
    below_low -= above_high
    below_low /= span
    np.maximum(below_low, -1.0, out=below_low)
    return np.minimum(below_low, 1.0, out=below_low)


def sign_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sign(a - b) with ties (see ``TIE``) as 0 and NaN kept (a - b is NaN where a or b is)."""
    d, pos, neg = _sides(a, b)
    out = np.subtract(pos, neg, dtype=np.float64)
    np.copyto(out, NAN, where=np.isnan(d))
    return out


# ---------------------------------------------------------------- last-bar twins
# Live evaluation needs only the last bar: these give, at one bar, exactly what the array
# helpers above give — the same operations in the same order, NaN propagated the same way.
# Each takes either one symbol's values (plain floats / numpy scalars: Python arithmetic, far
# cheaper than a numpy call on one value — the single-symbol path) or one value per symbol of a
# burst (1-D arrays, one numpy call for all symbols; see ``core.sensor_plan.evaluate_burst``).
# Conditions combine with ``&`` / ``|`` (they work on bools and bool arrays alike), never
# ``and`` / ``or`` / ``not``; mixing a Python bool into them costs ~1 µs (numpy's promotion), so
# nested ``where1`` does it where one side is a Python value.

_ARRAY = np.ndarray
_price_factors: np.ndarray | None = None  # a burst's per-symbol price scaling, while its twins run


class price_scale:  # noqa: N801 - used like a function: ``with shape.price_scale(factors): ...``
    """While a burst's stacked twins run: each symbol's prices were multiplied by ``factors``
    (powers of two, see ``core.sensor_plan``); ``price1`` divides them back out."""

    __slots__ = ("_factors", "_outer")

    def __init__(self, factors: np.ndarray) -> None:
        self._factors = factors

    def __enter__(self) -> None:
        global _price_factors
        self._outer, _price_factors = _price_factors, self._factors

    def __exit__(self, *_: object) -> None:
        global _price_factors
        _price_factors = self._outer


def price1(*values: float | np.ndarray) -> tuple[float | np.ndarray, ...]:
    """Last-bar values in price units, in the symbol's own units again (exact: powers of two).

    A twin passes price-unit values through this before ``diff1``/``cross1``/``sign_of1``: the
    tie rule's absolute floor ``TIE_ABS`` is in price units, so a tie must be judged there for
    a burst to decide every tie exactly as batch mode does. Outside a burst: unchanged."""
    factors = _price_factors
    if factors is None:
        return values
    return tuple(v / factors for v in values)


def _any_array(values: tuple[object, ...]) -> bool:
    for v in values:
        if v.__class__ is _ARRAY:
            return True
    return False


def nan1(*values: float | np.ndarray) -> bool | np.ndarray:
    """True where any value is NaN (x != x is the NaN test)."""
    if _any_array(values):
        bad = values[0] != values[0]
        for v in values[1:]:
            bad = bad | (v != v)
        return bad
    for v in values:
        if v != v:
            return True
    return False


def where1(cond: bool | np.ndarray, a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """``a`` where ``cond`` holds, else ``b`` (np.where for a burst)."""
    if cond.__class__ is _ARRAY:
        return np.where(cond, a, b)
    return a if cond else b


def missing1(bad: bool | np.ndarray, value: float | np.ndarray) -> float | np.ndarray:
    """NaN where ``bad`` (see ``nan1``), else ``value`` (``nan_if`` at the last bar)."""
    if bad.__class__ is _ARRAY:
        return np.where(bad, NAN, value)
    return NAN if bad else value


def float1(cond: bool | np.ndarray) -> float | np.ndarray:
    """1.0 where ``cond`` holds, else 0.0 (one numpy bool: a Python float, ~30× cheaper than numpy's)."""
    if cond.__class__ is _ARRAY:
        return cond * 1.0
    return 1.0 if cond else 0.0


def count1(mask: np.ndarray) -> int | np.ndarray:
    """How many bars of a window's bool mask are True (per symbol for a burst's (m, S) mask)."""
    return int(np.count_nonzero(mask)) if mask.ndim == 1 else mask.sum(axis=0)


def tanh1(x: float | np.ndarray) -> float | np.ndarray:
    """``squash`` at the last bar."""
    return np.tanh(x) if x.__class__ is _ARRAY else math.tanh(x)


def log1(x: float | np.ndarray) -> float | np.ndarray:
    """Natural log (np.log for a burst)."""
    return np.log(x) if x.__class__ is _ARRAY else math.log(x)


def delta1(x: np.ndarray) -> np.ndarray:
    """``x - prev(x)`` over a window: NaN at the first bar of one symbol. Stacked symbols (W, S)
    get 0 there instead: a NaN inside the flattened buffer a TA-Lib call sees (``sensors.ta``)
    would poison a recursive indicator for every later symbol, while TA-Lib skips a leading one;
    the first bar only seeds the recursion, whose start the window rule lets settle."""
    if x.ndim == 1:
        return x - prev(x)
    out = np.empty_like(x)  # same (column-major) layout: the transpose stays contiguous
    out[0] = 0.0
    np.subtract(x[1:], x[:-1], out=out[1:])
    return out


def min1(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """np.minimum (NaN wins) for one value or one per symbol."""
    if a.__class__ is _ARRAY or b.__class__ is _ARRAY:
        return np.minimum(a, b)
    return NAN if a != a or b != b else a if a <= b else b


def max1(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """np.maximum (NaN wins) for one value or one per symbol."""
    if a.__class__ is _ARRAY or b.__class__ is _ARRAY:
        return np.maximum(a, b)
    return NAN if a != a or b != b else a if a >= b else b


def sign1(x: float | np.ndarray) -> float | np.ndarray:
    """np.sign (NaN stays NaN)."""
    if x.__class__ is _ARRAY:
        return np.sign(x)
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0 if x == 0 else NAN


def diff1(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """``diff`` at the last bar."""
    d = a - b
    if d.__class__ is _ARRAY:
        threshold = np.abs(a) + np.abs(b)
        threshold *= TIE
        threshold += TIE_ABS
        return np.where(np.abs(d) <= threshold, 0.0, d)
    return 0.0 if abs(d) <= (abs(a) + abs(b)) * TIE + TIE_ABS else d


def sign_of1(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """``sign_of`` at the last bar."""
    return sign1(diff1(a, b))


def cross1(a: float | np.ndarray, b: float | np.ndarray, a_prev: float | np.ndarray,
           b_prev: float | np.ndarray) -> float | np.ndarray:
    """``cross`` at one bar, from this bar's and the previous bar's values."""
    s = sign1(diff1(a, b))
    ps = sign1(diff1(a_prev, b_prev))
    return where1(s != ps, s, 0.0) + ps * 0.0


def safe_div1(num: float | np.ndarray, den: float | np.ndarray) -> float | np.ndarray:
    """``safe_div`` at the last bar."""
    if num.__class__ is _ARRAY or den.__class__ is _ARRAY:
        out = np.broadcast_to(np.multiply(num, 0.0), np.broadcast_shapes(np.shape(num), np.shape(den))).copy()
        np.divide(num, den, out=out, where=den != 0)  # den NaN → NaN; den 0 → stays 0 (NaN if num is)
        return out
    return num / den if den != 0 else num * 0.0


def band1(x: float | np.ndarray, low: float, high: float, span: float) -> float | np.ndarray:
    """``band`` at the last bar."""
    if x.__class__ is _ARRAY:
        return band(x, low, high, span)
    if x != x:
        return NAN
    v = (max(low - x, 0.0) - max(x - high, 0.0)) / span
    return min(max(v, -1.0), 1.0)
