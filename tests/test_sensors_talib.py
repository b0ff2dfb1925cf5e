"""Sensor math equals TA-Lib called directly (real data), and the two exact re-formulations
used for live/batch parity (regression slope, window sums) equal TA-Lib's own functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib

from sensors.base import Bars
from sensors.patterns import PATTERNS
from sensors.registry import builtin_sensors
from sensors.trend import regression_slope
from sensors.volume import window_sum

from _sensor_data import SLICES, bars

BUILTIN = builtin_sensors()


def _b(data_dir: Path) -> Bars:
    file, start, rows = SLICES[0]
    return bars(data_dir, file, start, rows)


def _same(name: str, b: Bars, expected: np.ndarray) -> None:
    got = BUILTIN[name].compute(b)
    warm = BUILTIN[name].warmup_bars()
    np.testing.assert_allclose(got[warm:], np.clip(expected[warm:], -1, 1), rtol=0, atol=1e-12)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    pd = np.r_[np.nan, d[:-1]]
    return ((d > 0) & (pd <= 0)).astype(float) - ((d < 0) & (pd >= 0))


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_candlestick_patterns_are_talib_cdl(name: str, data_dir: Path) -> None:
    function, side, extra = PATTERNS[name]
    b = _b(data_dir)
    raw = getattr(talib, function)(b.open, b.high, b.low, b.close, **extra) / 100.0
    _same(name, b, raw if side == 0 else side * np.abs(raw))


def test_oscillators_are_talib(data_dir: Path) -> None:
    b = _b(data_dir)
    _same("aroon", b, talib.AROONOSC(b.high, b.low, 25) / 100)
    _same("cmo", b, talib.CMO(b.close, 14) / 100)
    _same("balance_of_power", b, talib.SMA(talib.BOP(b.open, b.high, b.low, b.close), 14))
    rsi = talib.RSI(b.close, 14)
    _same("rsi14", b, np.where(rsi < 30, (30 - rsi) / 30, np.where(rsi > 70, -(rsi - 70) / 30, 0.0)))
    _same("rsi_momentum", b, np.tanh((rsi - 50) / 15))
    wr = talib.WILLR(b.high, b.low, b.close, 14)
    _same("williams_r", b, np.where(wr < -80, (-80 - wr) / 20, np.where(wr > -20, -(wr + 20) / 20, 0.0)))
    mfi = talib.MFI(b.high, b.low, b.close, b.volume, 14)
    _same("mfi", b, np.where(mfi < 20, (20 - mfi) / 20, np.where(mfi > 80, -(mfi - 80) / 20, 0.0)))


def test_trend_sensors_are_talib(data_dir: Path) -> None:
    b = _b(data_dir)
    atr = talib.ATR(b.high, b.low, b.close, 14)
    _same("ema_cross", b, _cross(talib.EMA(b.close, 9), talib.EMA(b.close, 21)))
    _same("ema_trend", b, np.tanh((talib.EMA(b.close, 12) - talib.EMA(b.close, 26)) / atr))
    macd, signal, hist = talib.MACD(b.close, 12, 26, 9)
    _same("macd_cross", b, _cross(macd, signal))
    _same("macd_hist", b, np.tanh(2 * hist / atr))
    _same("psar", b, np.tanh((b.close - talib.SAR(b.high, b.low, 0.02, 0.2)) / atr))
    adx = talib.ADX(b.high, b.low, b.close, 14)
    di = talib.PLUS_DI(b.high, b.low, b.close, 14) - talib.MINUS_DI(b.high, b.low, b.close, 14)
    _same("adx_di", b, np.where(adx > 20, np.sign(di) * np.minimum(1, adx / 50), 0.0))
    _same("sma_cross", b, _cross(talib.SMA(b.close, 20), talib.SMA(b.close, 50)))


def test_band_and_volume_sensors_are_talib(data_dir: Path) -> None:
    b = _b(data_dir)
    upper, middle, lower = talib.BBANDS(b.close, 20, 2.0, 2.0, 0)
    sd = (upper - middle) / 2.0
    touch = np.where(b.close > upper, -np.minimum(1, 0.5 + (b.close - upper) / sd),
                     np.where(b.close < lower, np.minimum(1, 0.5 + (lower - b.close) / sd), 0.0))
    _same("bb_touch", b, touch)
    z = (b.close - talib.SMA(b.close, 20)) / talib.STDDEV(b.close, 20, 1.0)
    _same("zscore", b, -z / 3)
    mult = ((b.close - b.low) - (b.high - b.close)) / np.where(b.high > b.low, b.high - b.low, np.inf)
    _same("cmf", b, talib.SUM(mult * b.volume, 20) / talib.SUM(b.volume, 20))
    osc = talib.ADOSC(b.high, b.low, b.close, b.volume, 3, 10)
    _same("adosc", b, np.tanh(0.5 * osc / talib.SMA(b.volume, 10)))
    _same("adx_regime", b, np.tanh((talib.ADX(b.high, b.low, b.close, 14) - 22.5) / 7.5))


@pytest.mark.parametrize("period", [5, 14, 20, 50])
def test_regression_slope_equals_talib_linearreg_slope(period: int, data_dir: Path) -> None:
    b = _b(data_dir)
    ours, theirs = regression_slope(b.close, period), talib.LINEARREG_SLOPE(b.close, period)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[period:], theirs[period:], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("period", [3, 20, 100])
def test_window_sum_equals_talib_sum(period: int, data_dir: Path) -> None:
    b = _b(data_dir)
    ours, theirs = window_sum(b.volume * b.close, period), talib.SUM(b.volume * b.close, period)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[period:], theirs[period:], rtol=1e-10)
