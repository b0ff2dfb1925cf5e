"""Momentum sensors and oscillators: overbought/oversold reversals and momentum bursts."""

from __future__ import annotations

import math

import numpy as np
from sensors import ta

from sensors.base import Bars, Family, Params, live, sensor, wilder_settle
from sensors.shape import (
    above, band, band1, below, cross, cross1, diff1, missing1, nan1, squash_, tanh1, where1,
)


@sensor("rsi2_extreme", Family.MOMENTUM, params={"period": 2, "low": 10.0, "high": 90.0},
        warmup=lambda p: p["period"], settle=lambda p: wilder_settle(p["period"]), indicators=("RSI",))
def rsi2_extreme(b: Bars, period: int, low: float, high: float) -> np.ndarray:
    """Connors RSI(2): buy below 10, sell above 90."""
    return band(ta.RSI(b.close, period), low, high, 10.0)


@sensor("rsi14", Family.MOMENTUM, params={"period": 14, "low": 30.0, "high": 70.0},
        warmup=lambda p: p["period"], settle=lambda p: wilder_settle(p["period"]), indicators=("RSI",))
def rsi14(b: Bars, period: int, low: float, high: float) -> np.ndarray:
    """Classic RSI(14) oversold (< 30, buy) / overbought (> 70, sell)."""
    return band(ta.RSI(b.close, period), low, high, 30.0)


@sensor("rsi_momentum", Family.MOMENTUM, params={"period": 14},
        warmup=lambda p: p["period"], settle=lambda p: wilder_settle(p["period"]), indicators=("RSI",))
def rsi_momentum(b: Bars, period: int) -> np.ndarray:
    """RSI above 50 as bullish momentum, below 50 as bearish."""
    x = ta.RSI(b.close, period) - 50.0
    x /= 15.0
    return squash_(x)


def _stoch_warmup(p: Params) -> int:
    return int(p["fastk"]) + int(p["slowk"]) + int(p["slowd"]) - 2


@sensor("stoch", Family.MOMENTUM, params={"fastk": 14, "slowk": 3, "slowd": 3, "low": 20.0, "high": 80.0},
        warmup=_stoch_warmup, indicators=("STOCH",))
def stoch(b: Bars, fastk: int, slowk: int, slowd: int, low: float, high: float) -> np.ndarray:
    """Stochastic %K crossing %D inside the oversold (buy) or overbought (sell) zone."""
    k, d = ta.STOCH(b.high, b.low, b.close, fastk, slowk, 0, slowd, 0)
    c = cross(k, d)
    out = np.zeros(c.shape[0])
    np.copyto(out, np.nan, where=np.isnan(c))
    # the zone is checked only at the crossing bars (the same arithmetic per bar)
    up = np.flatnonzero(c > 0)
    out[up[below(d[up], low)]] = 1.0
    down = np.flatnonzero(c < 0)
    out[down[above(d[down], high)]] = -1.0
    return out


@sensor("stochrsi", Family.MOMENTUM, params={"period": 14, "fastk": 14, "fastd": 3, "low": 20.0, "high": 80.0},
        warmup=lambda p: p["period"] + p["fastk"] + p["fastd"] - 2,
        settle=lambda p: wilder_settle(p["period"]), indicators=("STOCHRSI",))
def stochrsi(b: Bars, period: int, fastk: int, fastd: int, low: float, high: float) -> np.ndarray:
    """Stochastic RSI %D below 20 (buy) or above 80 (sell)."""
    _, d = ta.STOCHRSI(b.close, period, fastk, fastd, 0)
    return band(d, low, high, 20.0)


@sensor("cci", Family.MOMENTUM, params={"period": 20}, warmup=lambda p: p["period"] - 1, indicators=("CCI",))
def cci(b: Bars, period: int) -> np.ndarray:
    """CCI beyond ±100, fading the extreme."""
    return band(ta.CCI(b.high, b.low, b.close, period), -100.0, 100.0, 100.0)


@sensor("williams_r", Family.MOMENTUM, params={"period": 14}, warmup=lambda p: p["period"] - 1,
        indicators=("WILLR",))
def williams_r(b: Bars, period: int) -> np.ndarray:
    """Williams %R below -80 (buy) or above -20 (sell)."""
    return band(ta.WILLR(b.high, b.low, b.close, period), -80.0, -20.0, 20.0)


@sensor("mfi", Family.MOMENTUM, params={"period": 14, "low": 20.0, "high": 80.0},
        warmup=lambda p: p["period"], indicators=("MFI",))
def mfi(b: Bars, period: int, low: float, high: float) -> np.ndarray:
    """Money Flow Index (volume-weighted RSI) below 20 / above 80."""
    return band(ta.MFI(b.high, b.low, b.close, b.volume, period), low, high, 20.0)


@sensor("roc", Family.MOMENTUM, params={"period": 10, "atr": 14},
        warmup=lambda p: max(p["period"], p["atr"]), settle=lambda p: wilder_settle(p["atr"]),
        indicators=("ROC", "NATR"))
def roc(b: Bars, period: int, atr: int) -> np.ndarray:
    """Rate of change scaled by the volatility expected over the same number of bars."""
    expected = ta.NATR(b.high, b.low, b.close, atr) * math.sqrt(period)
    return squash_(np.divide(ta.ROC(b.close, period), expected, out=expected))


@sensor("cmo", Family.MOMENTUM, params={"period": 14},
        warmup=lambda p: p["period"], settle=lambda p: wilder_settle(p["period"]), indicators=("CMO",))
def cmo(b: Bars, period: int) -> np.ndarray:
    """Chande momentum oscillator / 100."""
    return ta.CMO(b.close, period) / 100.0


@sensor("ultimate", Family.MOMENTUM, params={"short": 7, "mid": 14, "long": 28},
        warmup=lambda p: max(p["short"], p["mid"], p["long"]), indicators=("ULTOSC",))
def ultimate(b: Bars, short: int, mid: int, long: int) -> np.ndarray:
    """Ultimate oscillator below 30 (buy) or above 70 (sell)."""
    return band(ta.ULTOSC(b.high, b.low, b.close, short, mid, long), 30.0, 70.0, 20.0)


@sensor("balance_of_power", Family.MOMENTUM, params={"period": 14}, warmup=lambda p: p["period"] - 1,
        indicators=("BOP", "SMA"))
def balance_of_power(b: Bars, period: int) -> np.ndarray:
    """Smoothed balance of power: where closes sit within their bars' ranges."""
    return ta.SMA(ta.BOP(b.open, b.high, b.low, b.close), period)


@sensor("awesome", Family.MOMENTUM, params={"fast": 5, "slow": 34, "atr": 14},
        warmup=lambda p: max(p["slow"] - 1, p["atr"]), settle=lambda p: wilder_settle(p["atr"]),
        indicators=("MEDPRICE", "SMA", "ATR"))
def awesome(b: Bars, fast: int, slow: int, atr: int) -> np.ndarray:
    """Awesome oscillator (SMA5 - SMA34 of the median price) in ATRs."""
    median = ta.MEDPRICE(b.high, b.low)
    ao = ta.SMA(median, fast) - ta.SMA(median, slow)
    ao /= ta.ATR(b.high, b.low, b.close, atr)
    return squash_(ao)


# ------------------------------------------------------------------ live twins (last bar only)
# Each takes one symbol's window or a burst's stacked (W, S) windows (``SensorSpec.stacked``).


@live("rsi2_extreme", stacked=True)
def _rsi2_extreme(b: Bars, period: int, low: float, high: float) -> float:
    return band1(ta.RSI(b.close, period)[-1], low, high, 10.0)


@live("rsi14", stacked=True)
def _rsi14(b: Bars, period: int, low: float, high: float) -> float:
    return band1(ta.RSI(b.close, period)[-1], low, high, 30.0)


@live("rsi_momentum", stacked=True)
def _rsi_momentum(b: Bars, period: int) -> float:
    return tanh1((ta.RSI(b.close, period)[-1] - 50.0) / 15.0)


@live("stoch", stacked=True)
def _stoch(b: Bars, fastk: int, slowk: int, slowd: int, low: float, high: float) -> float:
    k, d = ta.STOCH(b.high, b.low, b.close, fastk, slowk, 0, slowd, 0)
    c = cross1(k[-1], d[-1], k[-2], d[-2])
    d = d[-1]
    buy = where1(diff1(d, low) < 0, 1.0, 0.0)  # an up-cross inside the oversold zone
    sell = where1(diff1(d, high) > 0, -1.0, 0.0)  # a down-cross inside the overbought zone
    out = where1(c > 0, buy, where1(c < 0, sell, 0.0))
    return missing1(nan1(c), out)


@live("stochrsi", stacked=True)
def _stochrsi(b: Bars, period: int, fastk: int, fastd: int, low: float, high: float) -> float:
    return band1(ta.STOCHRSI(b.close, period, fastk, fastd, 0)[1][-1], low, high, 20.0)


@live("cci", stacked=True)
def _cci(b: Bars, period: int) -> float:
    return band1(ta.CCI(b.high, b.low, b.close, period)[-1], -100.0, 100.0, 100.0)


@live("williams_r", stacked=True)
def _williams_r(b: Bars, period: int) -> float:
    return band1(ta.WILLR(b.high, b.low, b.close, period)[-1], -80.0, -20.0, 20.0)


@live("mfi", stacked=True)
def _mfi(b: Bars, period: int, low: float, high: float) -> float:
    return band1(ta.MFI(b.high, b.low, b.close, b.volume, period)[-1], low, high, 20.0)


@live("roc", stacked=True)
def _roc(b: Bars, period: int, atr: int) -> float:
    expected = ta.NATR(b.high, b.low, b.close, atr)[-1] * math.sqrt(period)
    return tanh1(ta.ROC(b.close, period)[-1] / expected)


@live("cmo", stacked=True)
def _cmo(b: Bars, period: int) -> float:
    return ta.CMO(b.close, period)[-1] / 100.0


@live("ultimate", stacked=True)
def _ultimate(b: Bars, short: int, mid: int, long: int) -> float:
    return band1(ta.ULTOSC(b.high, b.low, b.close, short, mid, long)[-1], 30.0, 70.0, 20.0)


@live("balance_of_power", stacked=True)
def _balance_of_power(b: Bars, period: int) -> float:
    return ta.SMA(ta.BOP(b.open, b.high, b.low, b.close), period)[-1]


@live("awesome", stacked=True)
def _awesome(b: Bars, fast: int, slow: int, atr: int) -> float:
    median = ta.MEDPRICE(b.high, b.low)
    ao = ta.SMA(median, fast)[-1] - ta.SMA(median, slow)[-1]
    return tanh1(ao / ta.ATR(b.high, b.low, b.close, atr)[-1])
