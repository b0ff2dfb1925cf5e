"""Recorded-data loader on the real files in ../shared/data (numbers from its MANIFEST.md)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError
from core.history import (
    _buckets,
    available_symbols,
    dataset_files,
    find_data_dir,
    load_candles,
    load_funding,
    load_mark_prices,
    resample,
)
from core.types import Timeframe


def manifest_rows(data_dir: Path) -> list[tuple[str, str, int, str, str, int]]:
    rows = []
    for line in (data_dir / "MANIFEST.md").read_text().splitlines():
        m = re.match(r"\| (\S+) \| (\S+\.csv\.gz) \| [^|]+ \| (\d+) \| ([\d\- :]+) \| ([\d\- :]+) \| (\d+) \|", line)
        if m:
            rows.append((m[1], m[2], int(m[3]), m[4].strip(), m[5].strip(), int(m[6])))
    return rows


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def test_manifest_is_parsed(data_dir: Path) -> None:
    assert len(manifest_rows(data_dir)) == 63


def test_every_file_matches_manifest(data_dir: Path) -> None:
    for folder, name, rows, first, last, gaps in manifest_rows(data_dir):
        path = data_dir / folder / name
        if "funding" in name:
            series = load_funding(path)
            assert (len(series), utc(int(series.time_ms[0])), utc(int(series.time_ms[-1]))) == (rows, first, last), name
            continue
        series = load_mark_prices(path) if "markprice" in name else load_candles(path)
        assert len(series) == rows, name
        assert utc(series.first_open_ms) == first, name
        assert utc(series.last_open_ms) == last, name
        assert len(series.gaps) == gaps, name
        assert series.duplicates_dropped == ()


def test_spot_2021_gaps_are_reported_with_positions(data_dir: Path) -> None:
    series = load_candles(data_dir / "spot-2021" / "BTCUSDT-5m.csv.gz")
    assert len(series.gaps) == 6
    longest = max(series.gaps, key=lambda g: g.missing)
    assert longest.missing == 56
    for gap in series.gaps:
        assert gap.next_ms - gap.after_ms == (gap.missing + 1) * Timeframe.M5.ms
        assert series.index_at(gap.next_ms) == series.index_at(gap.after_ms) + 1


@pytest.mark.parametrize("folder", ["futures-2023", "futures-2025"])
@pytest.mark.parametrize("target", [Timeframe.M5, Timeframe.H1])
def test_resampling_1m_reproduces_recorded_bars(data_dir: Path, folder: str, target: Timeframe) -> None:
    for symbol in available_symbols(data_dir / folder):
        files = dataset_files(data_dir / folder, symbol)
        one = load_candles(files.candles[Timeframe.M1])
        recorded = load_candles(files.candles[target])
        built = resample(one, target)
        common, mine, theirs = np.intersect1d(built.open_time, recorded.open_time, return_indices=True)
        if folder == "futures-2025" and len(common) == 0:
            continue  # its 1m and 5m/1h files cover different months (see MANIFEST)
        assert len(common) > 100, (symbol, target)
        for col in ("open", "high", "low", "close"):
            assert np.array_equal(getattr(built, col)[mine], getattr(recorded, col)[theirs]), (symbol, col)
        rel = np.abs(built.volume[mine] - recorded.volume[theirs]) / np.maximum(recorded.volume[theirs], 1e-12)
        # volumes are sums of floats, and the sources rounded a handful of bars: close, not equal
        assert np.mean(rel < 1e-9) > 0.995 and rel.max() < 0.01, symbol


def test_resample_drops_incomplete_edge_buckets(data_dir: Path) -> None:
    one = load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz")  # starts 11:13, ends 11:11
    five = resample(one, Timeframe.M5)
    assert five.first_open_ms % Timeframe.M5.ms == 0
    assert five.first_open_ms >= one.first_open_ms
    assert five.last_open_ms + Timeframe.M5.ms - Timeframe.M1.ms <= one.last_open_ms
    tail = resample(one.slice(0, len(one) - 2), Timeframe.M5)
    assert tail.last_open_ms <= five.last_open_ms


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.integers(1, 400), max_size=300), start=st.integers(1_600_000_000_000, 1_700_000_000_000),
       bucket=st.sampled_from([Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1]))
def test_buckets_are_the_runs_of_equal_bucket_starts(steps: list[int], start: int, bucket: Timeframe) -> None:
    """Times a minute apart with holes of up to 400 minutes (dense: one search per bucket;
    sparse: per row), from a start on no particular boundary."""
    t = (start // 60_000) * 60_000 + 60_000 * np.cumsum(np.array([0, *steps], dtype=np.int64))
    rows, opens = _buckets(t, bucket.ms)
    b = t - t % bucket.ms
    want = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    assert np.array_equal(rows, want) and np.array_equal(opens, b[want])


def test_candle_records_are_decimal_and_exact(data_dir: Path) -> None:
    series = load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz")
    first_line = gzip.open(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz", "rt").read(200).splitlines()[1]
    candle = series.candle(0)
    assert [str(x) for x in (candle.open, candle.high, candle.low, candle.close, candle.volume)] == first_line.split(",")[1:]
    assert candle.close_time_ms == candle.open_time_ms + 59_999


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_binance_public_layout_with_and_without_header_ms_and_us(tmp_path: Path) -> None:
    row = "{t},100.0,101.0,99.5,100.5,12.5,{c},1256.25,42,6.0,600.0,0\n"
    ms = [1_700_000_040_000 + 60_000 * i for i in range(3)]
    body = "".join(row.format(t=t, c=t + 59_999) for t in ms)
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
    a = load_candles(write(tmp_path / "BTCUSDT-1m-2023-11.csv", header + body))
    b = load_candles(write(tmp_path / "ETHUSDT-1m-2023-11.csv", body))
    us_body = "".join(row.format(t=t * 1000, c=(t + 59_999) * 1000) for t in ms)
    c = load_candles(write(tmp_path / "SOLUSDT-1m-2025-01.csv", us_body))
    for s in (a, b, c):
        assert list(s.open_time) == ms
        assert s.timeframe is Timeframe.M1
    assert (a.symbol, b.symbol, c.symbol) == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_zip_archive(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "BTCUSDT-1h-2023-11.zip", "w") as zf:
        zf.writestr("BTCUSDT-1h-2023-11.csv", "1699999200000,1,2,0.5,1.5,3,1700002799999,4,5,6,7,0\n")
    series = load_candles(tmp_path / "BTCUSDT-1h-2023-11.zip")
    assert len(series) == 1 and series.timeframe is Timeframe.H1


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ("1700000040000,100,99,98,100.5,1\n", "inconsistent candle"),  # high < close
        ("1700000040000,100,101,100.2,100.5,1\n", "inconsistent candle"),  # low > open
        ("1700000040000,100,101,99,100.5,-1\n", "inconsistent candle"),  # negative volume
        ("1700000040000,100,101,99,abc,1\n", "not a number"),
        ("1700000040000,100,101,99\n", "columns"),
        ("1700000040000,100,101,99,100,1\n1699999980000,100,101,99,100,1\n", "backwards"),
        ("1700000040000,100,101,99,100,1\n1700000040000,100,101,99,100.5,1\n", "different values"),
        ("1700000041000,100,101,99,100,1\n", "not aligned"),
    ],
)
def test_corrupt_rows_fail_with_file_and_line(tmp_path: Path, rows: str, needle: str) -> None:
    path = write(tmp_path / "BTCUSDT-1m.csv", "open_time_ms,open,high,low,close,volume\n" + rows)
    with pytest.raises(DataError, match=needle) as info:
        load_candles(path)
    assert re.search(r"BTCUSDT-1m\.csv:\d+", str(info.value))


def test_exact_duplicates_are_dropped_and_reported(tmp_path: Path) -> None:
    rows = "".join(f"{1_700_000_040_000 + 60_000 * i},1,2,0.5,1.5,3\n" for i in (0, 1, 1, 2, 5))
    series = load_candles(write(tmp_path / "BTCUSDT-1m.csv", rows))
    assert len(series) == 4
    assert series.duplicates_dropped == (1_700_000_100_000,)
    assert [(g.missing) for g in series.gaps] == [2]


def test_truncated_gzip_names_the_file(tmp_path: Path, data_dir: Path) -> None:
    raw = (data_dir / "futures-2023" / "BTCUSDT-1h.csv.gz").read_bytes()
    path = tmp_path / "BTCUSDT-1h.csv.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="BTCUSDT-1h.csv.gz"):
        load_candles(path)


def test_binance_funding_layout(tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT-fundingRate-2024-01.csv",
                 "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.00037409\n1704096000000,8,-0.00001\n")
    funding = load_funding(path)
    assert funding.symbol == "BTCUSDT"
    assert str(funding.rate_at(1704096000000)) == "-0.00001"
    assert funding.rate_at(1704096000001) is None


def test_find_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.delenv("CASINO_DATA_DIR", raising=False)
    assert find_data_dir(data_dir) == data_dir
    local = tmp_path / "work" / "data"
    local.mkdir(parents=True)
    (local / "x").write_text("")
    assert find_data_dir(cwd=tmp_path / "work") == local
    monkeypatch.setenv("CASINO_DATA_DIR", str(data_dir))
    assert find_data_dir(cwd=tmp_path / "work") == data_dir
    with pytest.raises(DataError, match="does not exist"):
        find_data_dir(tmp_path / "nope")
