"""Bursts: many symbols of one timeframe evaluated together equal batch mode for every sensor.

Real candles from ../shared/data, with price and volume scales far apart in one burst (BTC next
to DOGE, a BTC series × 1e-6 with volume × 1e5, a DOGE series × 1e5 with volume × 1e-4 — powers
of ten, so the burst's power-of-two scaling really rescales them), a symbol whose short history
keeps it out of the stack, and a sensor that raises for one symbol only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from config.settings import SensorSettings
from core.history import load_candles
from core.market_data import MarketData
from core.sensor_plan import BURST_MIN_SYMBOLS, build_plan, evaluate_bar, evaluate_burst
from core.types import Timeframe
import talib

from sensors import ta
from sensors.base import Bars, Family, SensorSpec
from sensors.registry import builtin_sensors

BUILTIN = builtin_sensors()
TOLERANCE = 1e-9
ROWS = 2_300
YOUNG_START = 1_000  # the young symbol's first bar: it has < a full window at the first checks
CHECKS = (1_300, 1_700, 1_900, 2_150, ROWS - 1)

# symbol → (file, first row, price factor, volume factor)
SOURCES = {
    "BTCUSDT": ("futures-2023/BTCUSDT-1m.csv.gz", 10_000, 1.0, 1.0),
    "DOGEUSDT": ("futures-2023/DOGEUSDT-1m.csv.gz", 20_000, 1.0, 1.0),
    "SOLUSDT": ("spot-2021/SOLUSDT-5m.csv.gz", 40_000, 1.0, 1.0),
    "MICROUSDT": ("futures-2023/BTCUSDT-1m.csv.gz", 30_000, 1e-6, 1e5),
    "HUGEUSDT": ("futures-2023/DOGEUSDT-1m.csv.gz", 5_000, 1e5, 1e-4),
    "YOUNGUSDT": ("futures-2023/ETHUSDT-1m.csv.gz", 1_000, 1.0, 1.0),
}


def test_a_stacked_talib_call_is_one_call_over_the_symbols_one_after_the_other(histories) -> None:
    raw = np.array([histories[s][0].close[:300] for s in ("BTCUSDT", "DOGEUSDT", "SOLUSDT")])  # (S, W)
    _, exponent = np.frexp(raw[:, -1])
    closes = raw * np.ldexp(1.0, 1 - exponent)[:, None]  # each last close in [1, 2), as a burst scales
    stacked = closes.T  # (W, S): time on axis 0
    with ta.shared():
        sma = ta.SMA(stacked, 20)
        upper, middle, lower = ta.BBANDS(stacked, 20, 2.0, 2.0, 0)
        assert ta.SMA(stacked, 20) is sma and sma.shape == stacked.shape
    np.testing.assert_array_equal(sma, talib.SMA(closes.ravel(), 20).reshape(3, 300).T)  # one flattened call
    np.testing.assert_array_equal(sma[:, 0], talib.SMA(closes[0], 20))  # the first symbol: bit for bit
    for s in range(3):  # past the seam a rolling window reads only its own symbol (running-sum rounding aside)
        np.testing.assert_allclose(sma[19:, s], talib.SMA(closes[s], 20)[19:], rtol=1e-13)
        np.testing.assert_allclose(middle[19:, s], sma[19:, s], rtol=1e-13)
    # unscaled, BTC's magnitude left in TA-Lib's running sum swamps DOGE's last digits: why bursts scale
    leaked = talib.SMA(raw.ravel(), 20).reshape(3, 300)[1, 19:]
    assert np.max(np.abs(leaked / talib.SMA(raw[1], 20)[19:] - 1)) > 1e-11


def test_running_sums_of_squares_run_symbol_by_symbol_in_a_burst(histories) -> None:
    """BBANDS/STDDEV keep a running sum of x²: flattened, its residue would carry every earlier
    symbol's segment (≈1e-9 on a Bollinger strength, found by bench/parity_audit.py), so a burst
    computes them per symbol — bit for bit what that symbol's own window gives."""
    raw = np.array([histories[s][0].close[:300] for s in ("BTCUSDT", "DOGEUSDT", "SOLUSDT", "MICROUSDT")])
    _, exponent = np.frexp(raw[:, -1])
    closes = raw * np.ldexp(1.0, 1 - exponent)[:, None]
    stacked = closes.T
    with ta.shared():
        upper, middle, lower = ta.BBANDS(stacked, 20, 2.0, 2.0, 0)
        std = ta.STDDEV(stacked, 20, 1.0)
    assert upper.shape == stacked.shape and std.shape == stacked.shape
    for s in range(len(closes)):
        for got, want in zip((upper, middle, lower), talib.BBANDS(closes[s], 20, 2.0, 2.0, 0), strict=True):
            np.testing.assert_array_equal(got[:, s], want)
        np.testing.assert_array_equal(std[:, s], talib.STDDEV(closes[s], 20, 1.0))


def _raise_on_silence(b: Bars) -> np.ndarray:
    """Raises when a symbol's last bar traded nothing (0 stays 0 under the burst's scaling)."""
    if np.any(b.volume[-1] == 0.0):
        raise ValueError("no volume on the last bar")
    return np.zeros(len(b))


CALLED_WITH: list[int] = []  # the dimensions of the windows the stacked twin saw


def _raise_on_silence_last(b: Bars) -> np.ndarray | float:
    CALLED_WITH.append(b.close.ndim)
    if np.any(b.volume[-1] == 0.0):
        raise ValueError("no volume on the last bar")
    return np.zeros(b.close.shape[1:]) if b.close.ndim == 2 else 0.0


# a stacked twin that raises for the whole burst when one symbol is bad, and a plugin-style
# sensor without a stacked twin (evaluated symbol by symbol) that fails the same way
RAISES_STACKED = SensorSpec("burst_raises", Family.STRUCTURE, _raise_on_silence, {}, lambda p: 0,
                            timeframes=("1m",), live=_raise_on_silence_last, stacked=True)
RAISES_ALONE = SensorSpec("alone_raises", Family.STRUCTURE, _raise_on_silence, {}, lambda p: 0, timeframes=("1m",))


def _bars(data_dir: Path, symbol: str) -> Bars:
    file, start, price, volume = SOURCES[symbol]
    s = load_candles(data_dir / file).slice(start, start + ROWS)
    return Bars(s.open * price, s.high * price, s.low * price, s.close * price, s.volume * volume), s.open_time


def _feed(md: MarketData, symbol: str, history: tuple[Bars, np.ndarray], i: int, volume: float | None = None) -> None:
    b, times = history
    v = b.volume[i] if volume is None else volume
    md.append_values(symbol, int(times[i]), b.open[i], b.high[i], b.low[i], b.close[i], v)


@pytest.fixture(scope="module")
def histories(data_dir: Path) -> dict[str, tuple[Bars, np.ndarray]]:
    return {symbol: _bars(data_dir, symbol) for symbol in SOURCES}


@pytest.fixture(scope="module")
def bursts(histories) -> Iterator[tuple[dict, list]]:
    """Feed every symbol bar by bar; at each check evaluate one burst of all of them."""
    # every sensor on 1m (context sensors included) so one burst covers the whole registry
    settings = SensorSettings(timeframes=["1m"], sensor_timeframes={n: ["1m"] for n in BUILTIN})
    plan = build_plan(settings, BUILTIN)
    sensors = plan.sensors_for(Timeframe.M1)
    md = MarketData(list(SOURCES), [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    out = []
    try:
        for i in range(ROWS):
            for symbol, history in histories.items():
                if symbol != "YOUNGUSDT" or i >= YOUNG_START:
                    _feed(md, symbol, history, i)
            if i in CHECKS:
                rings = [md.ring(s, Timeframe.M1) for s in SOURCES]
                indices = [md.last_index(s, Timeframe.M1) for s in SOURCES]
                out.append((i, evaluate_burst(sensors, BUILTIN, rings, Timeframe.M1, indices)))
        yield sensors, out
    finally:
        md.close()


def test_a_burst_equals_batch_for_every_sensor_and_symbol(histories, bursts) -> None:
    sensors, results = bursts
    assert len(sensors) == len(BUILTIN)
    first = {symbol: YOUNG_START if symbol == "YOUNGUSDT" else 0 for symbol in SOURCES}
    batch = {symbol: {p.name: BUILTIN[p.name].compute(Bars(*(c[first[symbol]:] for c in b)), dict(p.params))
                      for p in sensors} for symbol, (b, _) in histories.items()}
    stacked = 0
    for i, result in results:
        assert result.signals.shape == (len(SOURCES), len(sensors))
        assert not any(result.stale) and not any(result.errors)
        for s, symbol in enumerate(SOURCES):
            for k, p in enumerate(sensors):
                expected = batch[symbol][p.name][i - first[symbol]]
                got = result.signals[s, k]
                if math.isnan(expected):
                    assert math.isnan(got), f"{p.name} {symbol} bar {i}: burst {got}, batch NaN"
                else:
                    assert abs(got - expected) <= TOLERANCE, f"{p.name} {symbol} bar {i}: burst {got} batch {expected}"
                stacked += BUILTIN[p.name].stacked
    assert stacked > 0


def test_a_sensor_raising_for_one_symbol_is_retried_alone_and_spares_the_others(histories) -> None:
    specs = {**BUILTIN, RAISES_STACKED.name: RAISES_STACKED, RAISES_ALONE.name: RAISES_ALONE}
    settings = SensorSettings(timeframes=["1m"])
    sensors = build_plan(settings, specs).sensors_for(Timeframe.M1)
    names = [p.name for p in sensors]
    symbols = ["BTCUSDT", "DOGEUSDT", "MICROUSDT", "HUGEUSDT"]
    assert len(symbols) >= BURST_MIN_SYMBOLS  # stacked
    md = MarketData(symbols, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    try:
        last = 1_200
        for i in range(last + 1):
            for symbol in symbols:  # DOGE's last bar traded nothing: the faulty sensors raise for it only
                _feed(md, symbol, histories[symbol], i, 0.0 if symbol == "DOGEUSDT" and i == last else None)
        rings = [md.ring(s, Timeframe.M1) for s in symbols]
        assert all(r.volume[r.span(last, 1)][0] > 0 for r in (rings[0], rings[2], rings[3]))
        CALLED_WITH.clear()
        result = evaluate_burst(sensors, specs, rings, Timeframe.M1, [last] * 4)
        assert CALLED_WITH == [2, 1, 1, 1, 1]  # the burst raised, then each symbol alone
        for faulty in (RAISES_STACKED.name, RAISES_ALONE.name):
            k = names.index(faulty)
            assert math.isnan(result.signals[1, k])  # missing, never neutral
            assert all(result.signals[s, k] == 0.0 for s in (0, 2, 3))
            assert [e for e in result.errors[1] if e[0] == k] == [(k, "ValueError: no volume on the last bar")]
        assert not result.errors[0] and not result.errors[2] and not result.errors[3] and len(result.errors[1]) == 2
        for s, symbol in enumerate(symbols):  # every other sensor is there, equal to the symbol alone
            alone = evaluate_bar(sensors, specs, rings[s], Timeframe.M1, last)
            for k, name in enumerate(names):
                if name in (RAISES_STACKED.name, RAISES_ALONE.name):
                    continue
                assert not math.isnan(result.signals[s, k]), f"{name} {symbol}"
                assert abs(result.signals[s, k] - alone.signals[k]) <= TOLERANCE, f"{name} {symbol}"
    finally:
        md.close()


def test_one_full_symbol_or_none_is_evaluated_alone_exactly(histories) -> None:
    """Nothing to share (one symbol holds a group's window): each symbol's single-symbol
    evaluation, bit for bit. (Partly warm symbols joining the groups they hold are covered by
    the parity test above: the young symbol has 300, 700 and 900 of the 962 bars there.)"""
    settings = SensorSettings(timeframes=["1m"])
    sensors = build_plan(settings, BUILTIN).sensors_for(Timeframe.M1)
    symbols = ["BTCUSDT", "YOUNGUSDT"]
    md = MarketData(symbols, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    try:
        for i in range(1_100):
            _feed(md, "BTCUSDT", histories["BTCUSDT"], i)
            if i >= 1_098:  # 2 bars: fewer than any window group needs
                _feed(md, "YOUNGUSDT", histories["YOUNGUSDT"], i)
        rings = [md.ring(s, Timeframe.M1) for s in symbols]
        indices = [md.last_index(s, Timeframe.M1) for s in symbols]
        result = evaluate_burst(sensors, BUILTIN, rings, Timeframe.M1, indices)
        for s in range(2):
            alone = evaluate_bar(sensors, BUILTIN, rings[s], Timeframe.M1, indices[s])
            np.testing.assert_array_equal(result.signals[s], alone.signals)
            assert result.open_times[s] == alone.open_time_ms and result.stale[s] == alone.stale
        assert np.isnan(result.signals[1]).any() and not np.isnan(result.signals[0]).any()  # 2 bars: warming up
    finally:
        md.close()


async def test_the_pool_answers_a_burst_stacked_in_its_workers_with_batch_values(histories) -> None:
    """Real worker processes: each owns 4 symbols of very different scales and stacks them."""
    from core.sensor_pool import SensorPool

    symbols = [s for s in SOURCES if s != "YOUNGUSDT"] + ["ETHUSDT", "BTC2USDT", "DOGE2USDT"]
    extra = {"ETHUSDT": histories["YOUNGUSDT"], "BTC2USDT": histories["MICROUSDT"], "DOGE2USDT": histories["HUGEUSDT"]}
    feeds = {**{s: histories[s] for s in SOURCES}, **extra}
    # the built-in sensors only: test doubles other modules registered in this process are not
    # loaded into these workers
    settings = SensorSettings(workers=2, timeframes=["1m"], enabled=sorted(BUILTIN))
    md = MarketData(symbols, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    pool = SensorPool(md, settings)
    try:
        for i in range(1_100):
            for s in symbols:
                _feed(md, s, feeds[s], i)
        await pool.start()
        per_worker = [{s for (s, _), k in pool._slot_of.items() if k == slot} for slot in set(pool._slot_of.values())]
        assert all(len(syms) >= BURST_MIN_SYMBOLS for syms in per_worker)  # each worker stacks
        closed = {}
        for s in symbols:
            _feed(md, s, feeds[s], 1_100)
            closed[s] = (Timeframe.M1,)
        burst = await pool.evaluate_many(closed)
        assert set(burst) == set(symbols)
        for s in symbols:
            b = Bars(*(c[:1_101] for c in feeds[s][0]))
            readings = burst[s]
            assert len(readings) == len(pool.plan.sensors_for(Timeframe.M1))
            for r in readings:
                expected = BUILTIN[r.sensor].compute(b, dict(next(p.params for p in pool.plan.sensors_for(
                    Timeframe.M1) if p.name == r.sensor)))[-1]
                assert r.signal is not None and abs(r.signal - expected) <= TOLERANCE, f"{r.sensor} {s}"
                assert r.open_time_ms == int(feeds[s][1][1_100]) and r.symbol == s
    finally:
        await pool.stop()
        md.close()


def test_a_bar_without_trades_reads_no_vote_in_every_path(histories, data_dir: Path) -> None:
    """A real outage (spot BTCUSDT 5m, 2021-02-11: 17 flat bars with volume 0): every sensor
    reads 0 there — in batch mode, alone and in a burst — and votes again once trading resumes."""
    s = load_candles(data_dir / "spot-2021/BTCUSDT-5m.csv.gz").slice(19_000, 20_724)
    outage = Bars(s.open, s.high, s.low, s.close, s.volume)
    silent, resumed = 20_715 - 19_000, 20_723 - 19_000
    assert outage.volume[silent] == 0.0 and outage.high[silent] == outage.low[silent]
    assert outage.volume[resumed] > 0.0
    settings = SensorSettings(timeframes=["1m"], sensor_timeframes={n: ["1m"] for n in BUILTIN})
    sensors = build_plan(settings, BUILTIN).sensors_for(Timeframe.M1)
    others = ["BTCUSDT", "DOGEUSDT", "SOLUSDT"]
    symbols = ["OUTAGEUSDT", *others]
    md = MarketData(symbols, [Timeframe.M1], settings.window_bars + settings.ring_slack_bars)
    try:
        for i in range(resumed + 1):
            md.append_values("OUTAGEUSDT", int(s.open_time[i]), outage.open[i], outage.high[i], outage.low[i],
                             outage.close[i], outage.volume[i])
            for symbol in others:
                _feed(md, symbol, histories[symbol], i % ROWS)
            if i not in (silent, resumed):
                continue
            rings = [md.ring(sym, Timeframe.M1) for sym in symbols]
            burst = evaluate_burst(sensors, BUILTIN, rings, Timeframe.M1, [md.last_index(sym, Timeframe.M1)
                                                                            for sym in symbols])
            alone = evaluate_bar(sensors, BUILTIN, rings[0], Timeframe.M1, md.last_index("OUTAGEUSDT", Timeframe.M1))
            batch = np.array([BUILTIN[p.name].compute(outage, dict(p.params))[i] for p in sensors])
            assert not np.isnan(batch).any() and not np.isnan(alone.signals).any()
            np.testing.assert_allclose(burst.signals[0], batch, rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(alone.signals, batch, rtol=0, atol=TOLERANCE)
            if i == silent:
                assert np.all(batch == 0.0), [p.name for p, x in zip(sensors, batch, strict=True) if x != 0.0]
            else:
                assert np.count_nonzero(batch) >= 5  # trading again: sensors vote
    finally:
        md.close()
