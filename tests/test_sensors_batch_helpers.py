"""Batch-mode array helpers against their plain definitions, on real data and on the cases that
bite: exact ties, near ties, NaN at the start and in the middle, zero denominators.

The fast helpers (``sensors.shape`` array section, ``window_sum``, the structure segments) must
give the very same values as the straightforward numpy formulas they replace, bar for bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib

from sensors import shape, structure
from sensors.base import Bars
from sensors.batch import keep_heap
from sensors.volume import window_sum

from _sensor_data import SLICES, bars


# ---------------------------------------------------------------- plain definitions

def plain_diff(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    d = a - b
    threshold = (np.abs(a) + np.abs(b)) * shape.TIE + shape.TIE_ABS
    return np.where(np.abs(d) <= threshold, 0.0, d)


def plain_prev(x: np.ndarray, k: int = 1) -> np.ndarray:
    return np.concatenate([np.full(k, np.nan), x[:-k]])


def plain_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = np.sign(plain_diff(a, b))
    ps = plain_prev(s)
    return np.where(s != ps, s, 0.0) + ps * 0.0


def plain_safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, num * 0.0, num / den)


def plain_band(x: np.ndarray, low: float, high: float, span: float) -> np.ndarray:
    return np.clip((np.maximum(low - x, 0.0) - np.maximum(x - high, 0.0)) / span, -1.0, 1.0)


def same(x: np.ndarray, y: np.ndarray) -> bool:
    return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=True))


# ---------------------------------------------------------------- cases

def tricky_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (a, b) with exact ties, ties within TIE, crossings through ties, zeros, NaN."""
    rng = np.random.default_rng(11)
    n = 4_000
    b = np.round(100.0 + np.cumsum(rng.normal(0, 0.3, n)), 1)  # a price on a 0.1 tick grid
    a = b + rng.choice([-0.2, -0.1, 0.0, 0.1, 0.2], size=n)  # many exact ties
    near = b * (1.0 + rng.choice([-2e-9, -5e-10, 0.0, 5e-10, 2e-9], size=n))  # around the tolerance
    osc = rng.choice([-1e-13, 0.0, 1e-13, -3.0, 3.0], size=n)  # an oscillator at (nearly) 0
    a_nan = a.copy()
    a_nan[:37] = np.nan  # not warmed up
    a_nan[1_000] = np.nan  # a hole in the middle
    b_nan = b.copy()
    b_nan[:50] = np.nan
    b_nan[2_000:2_003] = np.nan
    return [(a, b), (near, b), (b, near), (osc, np.zeros(n)), (a_nan, b), (a, b_nan), (a_nan, b_nan),
            (np.full(n, np.nan), b)]


def real_pairs(data_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for file, start, rows in SLICES:
        b = bars(data_dir, file, start, rows)
        out += [(talib.EMA(b.close, 9), talib.EMA(b.close, 21)), (b.close, talib.SMA(b.close, 20))]
    return out


def test_tie_helpers_equal_their_definitions(data_dir: Path) -> None:
    for a, b in tricky_pairs() + real_pairs(data_dir):
        d = plain_diff(a, b)
        assert same(shape.diff(a, b), d)
        assert same(shape.above(a, b), d > 0)
        assert same(shape.below(a, b), d < 0)
        assert same(shape.sign_of(a, b), np.sign(d))
        assert same(shape.cross(a, b), plain_cross(a, b))
        for level in (0.0, 100.0, -3.0):  # against a threshold value, as oscillators are
            d = plain_diff(a, level)
            assert same(shape.above(a, level), d > 0) and same(shape.below(a, level), d < 0)


def test_the_tricky_cases_really_contain_ties() -> None:
    """The cases above exercise the tie path (else they would prove nothing about it)."""
    a, b = tricky_pairs()[1]
    d = a - b
    assert np.count_nonzero((d != 0) & (plain_diff(a, b) == 0)) > 100  # snapped near ties
    assert np.count_nonzero(plain_cross(*tricky_pairs()[0]) != 0) > 100


def test_cross_marks_only_the_crossing_bar() -> None:
    a = np.array([np.nan, 1.0, 2.0, 2.0, 3.0, 1.0, 2.0, 2.0, 1.0])
    b = np.full(9, 2.0)
    # s:           nan  -1    0    0    1   -1    0    0   -1
    expected = [np.nan, np.nan, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0]
    assert same(shape.cross(a, b), np.array(expected))


def test_band_ratio_nan_if_equal_their_definitions() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-10, 110, 5_000)
    x[:20] = np.nan
    x[300] = np.nan
    assert same(shape.band(x, 20.0, 80.0, 20.0), plain_band(x, 20.0, 80.0, 20.0))
    num = rng.normal(size=5_000)
    num[7] = np.nan
    den = rng.choice([0.0, 0.5, -2.0, np.nan], size=5_000)
    den[7] = 0.0  # NaN over 0 stays NaN
    assert same(shape.ratio(num, den), plain_safe_div(num, den))
    assert same(shape.ratio(num, den), shape.safe_div(num, den))
    inplace = num.copy()
    assert same(shape.ratio(inplace, den, out=inplace), plain_safe_div(num, den))
    out = np.arange(5_000, dtype=np.float64)
    expected = np.where(np.isnan(x) | np.isnan(den), np.nan, out)
    assert same(shape.nan_if(out.copy(), x, den), expected)


@pytest.mark.parametrize("period", [1, 2, 3, 7, 20, 64, 2_500])
def test_window_sum_is_each_window_on_its_own(period: int, data_dir: Path) -> None:
    b = bars(data_dir, *SLICES[0])
    x = b.close * b.volume  # ~1e8 per bar: where running totals drift
    got = window_sum(x, period)
    assert np.isnan(got[: period - 1]).all()
    windows = np.lib.stride_tricks.sliding_window_view(x, period)
    expected = np.array([np.sum(w) for w in windows])  # every window summed from scratch
    np.testing.assert_allclose(got[period - 1:], expected, rtol=1e-14, atol=0)
    # where a window sits does not change how it is summed: a shifted series gives bit-equal sums
    assert same(window_sum(x[123:], period)[period - 1:], got[123 + period - 1:])
    ints = np.floor(b.volume)  # integer values: every order of summation is exact
    assert same(window_sum(ints, period)[period - 1:], np.convolve(ints, np.ones(period), "valid"))


def test_window_sum_short_history_and_nan() -> None:
    assert np.isnan(window_sum(np.ones(3), 5)).all()
    x = np.ones(10)
    x[4] = np.nan
    got = window_sum(x, 3)
    assert same(got, np.array([np.nan, np.nan, 3, 3, np.nan, np.nan, np.nan, 3, 3, 3]))


def plain_last_level(values: np.ndarray, k: int, lookback: int, highs: bool) -> np.ndarray:
    """Bar by bar: the last pivot confirmed before bar i, at most ``lookback`` bars old."""
    confirmed = structure._pivots(values, k, highs)
    out = np.full(values.shape[0], np.nan)
    last = -1
    for i in range(values.shape[0]):
        if last >= 0 and i - last <= lookback:
            out[i] = values[last]
        if confirmed[i]:
            last = i - k
    return out


@pytest.mark.parametrize("file,start,rows", SLICES)
def test_structure_segments_equal_the_bar_by_bar_definition(file: str, start: int, rows: int,
                                                             data_dir: Path) -> None:
    b = bars(data_dir, file, start, rows)
    for k, lookback in ((3, 100), (2, 5), (5, 1)):
        for values, highs in ((b.high, True), (b.low, False)):
            assert same(structure._last_level(values, k, lookback, highs),
                        plain_last_level(values, k, lookback, highs))


def test_structure_without_pivots() -> None:
    flat = np.arange(50, dtype=np.float64)  # strictly rising: no swing high is ever confirmed
    b = Bars(flat, flat + 1, flat - 1, flat, np.ones(50))
    assert np.isnan(structure._last_level(b.high, 3, 100, True)).all()
    assert not structure._double(b, 3, 60, 0.001, True).any()


def test_keep_heap_on_glibc() -> None:
    assert keep_heap() is True  # the CI machine runs glibc Linux
    assert keep_heap() is True  # once per process: later calls only report


def test_keep_heap_turns_numpy_huge_page_advice_off() -> None:
    keep_heap()
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / 1.26
    assert multiarray._get_madvise_hugepage() is False
