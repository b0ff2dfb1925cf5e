"""Small vectorised helpers that turn indicator values into signals.

All helpers propagate NaN (an input that is not warmed up gives a NaN signal, never a
false 0 vote) and look only backwards (``prev`` shifts towards the future, never back).
"""

from __future__ import annotations

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


# ---------------------------------------------------------------- scalar twins
# Live evaluation needs only the last bar: these give, for plain floats (numpy scalars keep
# numpy's division semantics), exactly what the array helpers above give at one bar — the
# same operations in the same order, NaN propagated the same way.


def nan1(*values: float) -> bool:
    """True if any value is NaN (x != x is the NaN test)."""
    for v in values:
        if v != v:
            return True
    return False


def sign1(x: float) -> float:
    """np.sign for one value (NaN stays NaN)."""
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0 if x == 0 else NAN


def diff1(a: float, b: float) -> float:
    """``diff`` for one pair of values."""
    d = a - b
    return 0.0 if abs(d) <= (abs(a) + abs(b)) * TIE + TIE_ABS else d


def sign_of1(a: float, b: float) -> float:
    """``sign_of`` for one pair of values."""
    return sign1(diff1(a, b))


def cross1(a: float, b: float, a_prev: float, b_prev: float) -> float:
    """``cross`` at one bar, from this bar's and the previous bar's values."""
    s = sign1(diff1(a, b))
    ps = sign1(diff1(a_prev, b_prev))
    return (s if s != ps else 0.0) + ps * 0.0


def safe_div1(num: float, den: float) -> float:
    """``safe_div`` for one pair of values."""
    return num / den if den != 0 else num * 0.0


def band1(x: float, low: float, high: float, span: float) -> float:
    """``band`` for one value."""
    if x != x:
        return NAN
    v = (max(low - x, 0.0) - max(x - high, 0.0)) / span
    return min(max(v, -1.0), 1.0)
