"""Shared-memory rings and multi-timeframe closing on real 1m data."""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from core.history import CandleSeries, load_candles, resample
from core.market_data import MarketData
from core.metrics import REGISTRY
from core.types import Candle, Timeframe

T = Timeframe
SYMBOL = "BTCUSDT"


def _feed(md: MarketData, s: CandleSeries, start: int = 0, stop: int | None = None) -> list[tuple[int, tuple]]:
    out = []
    for i in range(start, len(s) if stop is None else stop):
        t = int(s.open_time[i])
        out.append((t, md.append_values(SYMBOL, t, s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i])))
    return out


@pytest.fixture(scope="module")
def btc_1m(data_dir: Path) -> CandleSeries:
    return load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz").slice(0, 6 * 24 * 60)


def _bad(reason: str) -> float:
    return REGISTRY.get_sample_value("casino_bad_candles_total", {"reason": reason}) or 0.0


def test_1m_closes_build_the_recorded_5m_and_1h_bars(btc_1m: CandleSeries, data_dir: Path) -> None:
    folder = data_dir / "futures-2023"
    with MarketData([SYMBOL], [T.M1, T.M5, T.M15, T.H1, T.H4], capacity=10_000) as md:
        closes = _feed(md, btc_1m)
        for tf, recorded in ((T.M5, load_candles(folder / "BTCUSDT-5m.csv.gz")),
                             (T.H1, load_candles(folder / "BTCUSDT-1h.csv.gz"))):
            t, o, h, low, c, v = md.window(SYMBOL, tf, 10_000)
            assert len(t) > 10
            idx = np.searchsorted(recorded.open_time, t)
            assert np.array_equal(recorded.open_time[idx], t), "a bar the recorded file does not have"
            for ours, theirs in ((o, recorded.open), (h, recorded.high), (low, recorded.low), (c, recorded.close)):
                assert np.array_equal(ours, theirs[idx])
            # the recorded files' volumes were summed by the source with its own rounding
            np.testing.assert_allclose(v, recorded.volume[idx], rtol=1e-3)
        # exactly the bars core.history.resample (Binance's rule) builds from the same minutes
        for tf in (T.M5, T.M15, T.H1, T.H4):
            ref = resample(btc_1m, tf)
            t, o, h, low, c, v = md.window(SYMBOL, tf, 10_000)
            assert np.array_equal(t, ref.open_time) and np.array_equal(o, ref.open)
            assert np.array_equal(c, ref.close) and np.array_equal(low, ref.low) and np.array_equal(h, ref.high)
            np.testing.assert_allclose(v, ref.volume, rtol=1e-12)  # summation order differs
    # a higher timeframe is reported closed exactly on the minute that ends it
    for t, closed in closes:
        end = t + 60_000
        for tf in (T.M5, T.M15, T.H1, T.H4):
            first_bucket = btc_1m.first_open_ms - btc_1m.first_open_ms % tf.ms
            complete = not (t - t % tf.ms == first_bucket and first_bucket != btc_1m.first_open_ms)
            assert (tf in closed) == (end % tf.ms == 0 and complete), (t, tf)
        assert closed[0] is T.M1


def test_a_missed_last_minute_closes_the_bar_on_the_next_candle(btc_1m: CandleSeries) -> None:
    # drop the minutes 10:57–10:59 of the first full hour: a stream gap
    keep = np.ones(len(btc_1m), dtype=bool)
    hour = btc_1m.open_time - btc_1m.open_time % 3_600_000
    first_full = np.unique(hour)[1]
    gap_times = first_full + np.array([57, 58, 59]) * 60_000
    keep[np.isin(btc_1m.open_time, gap_times)] = False
    gapped = CandleSeries(SYMBOL, T.M1, *(a[keep] for a in (btc_1m.open_time, btc_1m.open, btc_1m.high,
                                                               btc_1m.low, btc_1m.close, btc_1m.volume)))
    with MarketData([SYMBOL], [T.M1, T.M5, T.H1], capacity=5_000) as md:
        closes = dict(_feed(md, gapped, 0, 300))
        assert T.H1 in closes[int(first_full + 3_600_000)]  # the next hour's first minute closed it
        assert T.M5 in closes[int(first_full + 3_600_000)]
        t, *_ , c, v = md.window(SYMBOL, T.H1, 10)
        ref = resample(gapped.slice(0, 300), T.H1)
        assert np.array_equal(t[: len(ref)], ref.open_time)
        assert c[list(t).index(first_full)] == btc_1m.close[np.searchsorted(btc_1m.open_time, first_full + 56 * 60_000)]


def test_ring_windows_stay_contiguous_across_wraps(btc_1m: CandleSeries) -> None:
    with MarketData([SYMBOL], [T.M1], capacity=50) as md:
        _feed(md, btc_1m, 0, 137)
        ring = md.ring(SYMBOL, T.M1)
        assert ring.count == 137
        for n in (1, 17, 50, 80):
            t, o, h, low, c, v = md.window(SYMBOL, T.M1, n)
            k = min(n, 50)
            assert np.array_equal(t, btc_1m.open_time[137 - k:137]) and np.array_equal(c, btc_1m.close[137 - k:137])
        sl = ring.span(120, 30)  # an older bar still inside the ring
        assert np.array_equal(ring.close[sl], btc_1m.close[91:121])
        assert not ring.overwritten(120, 30)
        _feed(md, btc_1m, 137, 150)
        assert ring.overwritten(120, 30)  # its slots have been reused since
        with pytest.raises(IndexError):
            ring.span(150, 5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"close": float("nan")}, "non_finite"),
        ({"volume": float("inf")}, "non_finite"),
        ({"high": 1.0}, "inconsistent"),
        ({"volume": -1.0}, "inconsistent"),
        ({"t": -60_000}, "non_monotonic"),
        ({"t": 0}, "non_monotonic"),
        ({"t": 30_000}, "misaligned"),
        ({"symbol": "ETHUSDT"}, "unknown_symbol"),
    ],
)
def test_bad_candles_are_rejected_logged_counted_and_never_written(
    change: dict, reason: str, btc_1m: CandleSeries, caplog: pytest.LogCaptureFixture
) -> None:
    with MarketData([SYMBOL], [T.M1, T.M5], capacity=100) as md:
        _feed(md, btc_1m, 0, 10)
        before_count, before_bad = md.ring(SYMBOL, T.M1).count, _bad(reason)
        last = btc_1m.open_time[9]
        row = {"symbol": SYMBOL, "t": int(last) + change.get("t", 60_000), "open": btc_1m.open[10],
               "high": btc_1m.high[10], "low": btc_1m.low[10], "close": btc_1m.close[10], "volume": btc_1m.volume[10]}
        row.update({k: v for k, v in change.items() if k != "t"})
        with caplog.at_level(logging.WARNING, logger="core.market_data"):
            closed = md.append_values(row["symbol"], row["t"], row["open"], row["high"], row["low"],
                                      row["close"], row["volume"])
        assert closed == ()
        assert md.ring(SYMBOL, T.M1).count == before_count
        assert _bad(reason) == before_bad + 1
        assert reason in caplog.text
        # the stream carries on with the next good candle
        assert md.append_values(SYMBOL, int(last) + 60_000, btc_1m.open[10], btc_1m.high[10], btc_1m.low[10],
                                btc_1m.close[10], btc_1m.volume[10])[0] is T.M1


def test_candle_records_are_accepted_and_open_bars_refused(btc_1m: CandleSeries) -> None:
    with MarketData([SYMBOL], [T.M1, T.M5], capacity=100) as md:
        assert md.append_closed(btc_1m.candle(0)) == (T.M1,)
        open_bar = btc_1m.candle(1, closed=False)
        assert md.append_closed(open_bar) == ()
        five = Candle(SYMBOL, T.M5, int(btc_1m.open_time[5]), Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(1))
        assert md.append_closed(five) == ()
        assert md.ring(SYMBOL, T.M1).count == 1


def test_close_unlinks_every_segment(btc_1m: CandleSeries) -> None:
    md = MarketData([SYMBOL, "ETHUSDT"], [T.M1, T.M5, T.H1], capacity=100)
    names = md.segment_names()
    assert len(names) == 6 and all(os.path.exists(f"/dev/shm/{n}") for n in names)
    _feed(md, btc_1m, 0, 20)
    md.close()
    md.close()  # idempotent
    assert not any(os.path.exists(f"/dev/shm/{n}") for n in names)
