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
    """``out`` with NaN wherever any input is NaN."""
    bad = np.zeros(out.shape, dtype=bool)
    for x in inputs:
        bad |= np.isnan(x)
    out[bad] = NAN
    return out


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (flat bars, zero volume) and NaN where either is NaN."""
    out = num * 0.0  # NaN where num is NaN, else 0
    np.divide(num, den, out=out, where=den != 0)  # den NaN → NaN; den 0 → stays 0
    return out


def diff(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """a - b, with differences inside the tie tolerance snapped to exactly 0 (NaN kept)."""
    d = a - b
    threshold = np.abs(a)
    threshold += np.abs(b)
    threshold *= TIE
    threshold += TIE_ABS
    np.copyto(d, 0.0, where=np.abs(d) <= threshold)
    return d


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 where ``a`` crosses above ``b`` at this bar, -1 where it crosses below, else 0.

    With s = sign(a - b) (ties = 0): a cross is a bar whose s differs from the previous
    one and is not 0, e.g. -1 → +1 or 0 → +1; +1 → 0 is not a cross (yet).
    """
    s = np.sign(diff(a, b))
    ps = prev(s)
    out = np.where(s != ps, s, 0.0)
    out += ps * 0.0  # NaN where the previous bar is not warmed up
    return out


def squash(x: np.ndarray) -> np.ndarray:
    """tanh keeps strength monotone while bounding it to (-1, 1)."""
    return np.tanh(x)


def band(x: np.ndarray, low: float, high: float, span: float) -> np.ndarray:
    """Mean-reversion vote of an oscillator: + below ``low``, - above ``high``, 0 between;
    strength grows linearly over ``span`` units beyond the threshold (continuous at the
    thresholds, so no tie handling is needed; NaN propagates)."""
    below = np.maximum(low - x, 0.0)
    below -= np.maximum(x - high, 0.0)
    below /= span
    return np.minimum(np.maximum(below, -1.0), 1.0)


def sign_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sign(a - b) with ties (see ``TIE``) as 0 and NaN kept."""
    return nan_if(np.sign(diff(a, b)), a, b)
