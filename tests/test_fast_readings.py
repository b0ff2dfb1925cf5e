"""``core.fast_readings``: the history each timeframe is computed from, and the 1m visibility
map, against their plain definitions on real recorded candles — whole, and with bars removed
(gaps make a timeframe's bars fewer than their time span)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.fast_readings import _history, _visibility, series_for
from core.history import CandleSeries, load_candles
from core.types import Timeframe

TIMEFRAMES = [Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4]


@pytest.fixture(scope="module")
def btc(data_dir: Path) -> CandleSeries:
    return load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz", symbol="BTCUSDT", timeframe=Timeframe.M1)


def without(s: CandleSeries, keep: np.ndarray) -> CandleSeries:
    return replace(s, open_time=s.open_time[keep], open=s.open[keep], high=s.high[keep], low=s.low[keep],
                   close=s.close[keep], volume=s.volume[keep], gaps=())


def gapped(s: CandleSeries, seed: int) -> CandleSeries:
    """``s`` with a few long holes (whole days of higher timeframes) and scattered missing bars."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(s)) > 0.02
    for start in rng.integers(0, len(s) - 5_000, 6):
        keep[start:start + int(rng.integers(100, 5_000))] = False
    return without(s, keep)


def reference_history(m1: CandleSeries, tf: Timeframe, first_close_ms: int, history_bars: int) -> CandleSeries:
    """The whole history resampled, then cut ``history_bars`` bars before the first one read."""
    s = series_for(m1, tf)
    first = int(np.searchsorted(s.open_time + tf.ms, first_close_ms, side="right")) - 1
    lo = max(0, first - history_bars)
    return replace(s, open_time=s.open_time[lo:], open=s.open[lo:], high=s.high[lo:], low=s.low[lo:],
                   close=s.close[lo:], volume=s.volume[lo:])


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("history_bars", [1, 300, 1280])
def test_history_is_the_tail_of_the_whole_resample(btc: CandleSeries, seed: int | None, history_bars: int) -> None:
    m1 = btc if seed is None else gapped(btc, seed)
    for first_close_ms in (int(m1.open_time[100]), int(m1.open_time[len(m1) // 2]), int(m1.open_time[-50])):
        for tf in TIMEFRAMES:
            got = _history(m1, tf, first_close_ms, history_bars)
            want = reference_history(m1, tf, first_close_ms, history_bars)
            for name in ("open_time", "open", "high", "low", "close", "volume"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), (tf, first_close_ms, name)


@pytest.mark.parametrize("seed", [None, 4, 5])
def test_visibility_is_the_latest_closed_bar(btc: CandleSeries, seed: int | None) -> None:
    m1 = btc if seed is None else gapped(btc, seed)
    close_1m = m1.open_time + Timeframe.M1.ms
    for tf in TIMEFRAMES:
        closes_all = series_for(m1, tf).open_time + tf.ms
        for closes in (closes_all, closes_all[len(closes_all) // 4:len(closes_all) // 2]):
            visible, fresh = _visibility(closes, close_1m)
            want = np.searchsorted(closes, close_1m, side="right") - 1
            assert visible.dtype == np.int64 and np.array_equal(visible, want)
            assert np.array_equal(fresh, (want >= 0) & (closes[np.maximum(want, 0)] == close_1m))
            assert fresh.sum() == np.isin(closes, close_1m).sum() > 0
