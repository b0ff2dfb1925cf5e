"""Recorded market data: load, validate and resample real Binance candles and funding.

Layouts read (plain, ``.gz`` or a ``.zip`` holding one CSV):

- Casino's: header ``open_time_ms,open,high,low,close,volume`` (the ``../shared/data`` files;
  mark-price files use the same layout);
- Binance public-data klines: 12 columns ``open_time, open, high, low, close, volume,
  close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, ignore``, with or
  without a header, timestamps in ms or µs (µs files appeared in 2025);
- funding: Casino's ``open_time_ms,funding_rate`` or Binance's
  ``calc_time,funding_interval_hours,last_funding_rate``.

Every load validates: strictly increasing open times, high ≥ max(open, close),
low ≤ min(open, close), volume ≥ 0. Exact duplicate rows are dropped and reported;
conflicting duplicates, time going backwards, or a malformed row fail with the file name
and line number. Gaps are reported (how many, where), never filled.

Resampling follows Binance: buckets by open time aligned to UTC, first open, max high,
min low, last close, summed volume; a bucket whose minutes are not all present at the
start or end of the data is not emitted (it would not be a closed bar on Binance).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.types import Candle, Timeframe

log = logging.getLogger(__name__)

CASINO_HEADER = ["open_time_ms", "open", "high", "low", "close", "volume"]
BINANCE_KLINE_HEADER = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
_US_THRESHOLD = 10**14  # ms epochs are ~1.7e12; µs epochs ~1.7e15
_NAME_RE = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<tf>\d+[mhdw])(?:[-.]|$)")


@dataclass(frozen=True, slots=True)
class Gap:
    """``missing`` bars are absent between the bar opening at ``after_ms`` and ``next_ms``."""

    after_ms: int
    next_ms: int
    missing: int


@dataclass(frozen=True)
class CandleSeries:
    """Column arrays of one symbol × timeframe, oldest first (float64 OHLCV, int64 open times)."""

    symbol: str
    timeframe: Timeframe
    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    gaps: tuple[Gap, ...] = ()
    duplicates_dropped: tuple[int, ...] = ()  # open times of dropped exact duplicates
    source: str = ""

    def __len__(self) -> int:
        return int(self.open_time.shape[0])

    @property
    def first_open_ms(self) -> int:
        return int(self.open_time[0])

    @property
    def last_open_ms(self) -> int:
        return int(self.open_time[-1])

    @property
    def missing_bars(self) -> int:
        return sum(g.missing for g in self.gaps)

    def index_at(self, open_time_ms: int) -> int:
        """Index of the bar opening at ``open_time_ms`` (KeyError when absent)."""
        i = int(np.searchsorted(self.open_time, open_time_ms))
        if i >= len(self) or int(self.open_time[i]) != open_time_ms:
            raise KeyError(open_time_ms)
        return i

    def slice(self, start: int, stop: int | None = None) -> CandleSeries:
        """Rows [start, stop) as a new series (views, no copy); gaps outside are dropped."""
        sl = slice(start, stop)
        ot = self.open_time[sl]
        lo, hi = (int(ot[0]), int(ot[-1])) if len(ot) else (0, -1)
        return CandleSeries(
            self.symbol, self.timeframe, ot, self.open[sl], self.high[sl], self.low[sl],
            self.close[sl], self.volume[sl],
            tuple(g for g in self.gaps if lo <= g.after_ms and g.next_ms <= hi),
            (), self.source,
        )

    def candle(self, i: int, *, closed: bool = True) -> Candle:
        """Row ``i`` as a kernel Candle with Decimal prices (shortest repr of the float)."""
        return Candle(
            symbol=self.symbol,
            timeframe=self.timeframe,
            open_time_ms=int(self.open_time[i]),
            open=Decimal(repr(float(self.open[i]))),
            high=Decimal(repr(float(self.high[i]))),
            low=Decimal(repr(float(self.low[i]))),
            close=Decimal(repr(float(self.close[i]))),
            volume=Decimal(repr(float(self.volume[i]))),
            closed=closed,
        )

    def candles(self, start: int = 0, stop: int | None = None) -> Iterator[Candle]:
        for i in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.candle(i)


@dataclass(frozen=True)
class FundingSeries:
    symbol: str
    time_ms: np.ndarray  # int64 settlement times
    rate: np.ndarray  # float64, per settlement (0.0001 = 0.01 %)
    rates_text: tuple[str, ...] = field(default=(), repr=False)  # exact decimal text per row
    source: str = ""

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    def rate_decimal(self, i: int) -> Decimal:
        return Decimal(self.rates_text[i]) if self.rates_text else Decimal(repr(float(self.rate[i])))

    def rate_at(self, time_ms: int) -> Decimal | None:
        """The rate settled exactly at ``time_ms``, or None."""
        i = int(np.searchsorted(self.time_ms, time_ms))
        if i < len(self) and int(self.time_ms[i]) == time_ms:
            return self.rate_decimal(i)
        return None


# --------------------------------------------------------------------------- reading


def _open_text(path: Path) -> io.TextIOBase:
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        if name.endswith(".zip"):
            zf = zipfile.ZipFile(path)
            members = [m for m in zf.namelist() if m.lower().endswith(".csv")]
            if len(members) != 1:
                raise DataError(f"{path}: expected exactly one CSV inside the zip, found {members}")
            return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot open ({exc})") from None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) for every non-empty line."""
    fh = _open_text(path)
    try:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if row and any(cell.strip() for cell in row):
                yield lineno, row
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: corrupt file ({exc})") from None
    finally:
        fh.close()


def infer_symbol_timeframe(path: Path) -> tuple[str, Timeframe]:
    """``BTCUSDT-1m.csv.gz`` / ``BTCUSDT-1m-2024-01.zip`` → ('BTCUSDT', 1m)."""
    m = _NAME_RE.match(path.name)
    if not m:
        raise DataError(f"{path}: cannot infer symbol and timeframe from the file name")
    try:
        return m["symbol"], Timeframe.parse(m["tf"])
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


def load_candles(
    path: str | os.PathLike[str], *, symbol: str | None = None, timeframe: Timeframe | None = None
) -> CandleSeries:
    """Load and validate a candle file in either layout (see the module docstring)."""
    path = Path(path)
    if symbol is None or timeframe is None:
        inferred_symbol, inferred_tf = infer_symbol_timeframe(path)
        symbol = symbol or inferred_symbol
        timeframe = timeframe or inferred_tf
    times: list[int] = []
    cols: list[list[float]] = [[], [], [], [], []]
    lines: list[int] = []
    width = None
    for lineno, row in _rows(path):
        first = row[0].strip()
        if not lines and not first.lstrip("-").isdigit():
            header = [c.strip().lower() for c in row]
            if header[:6] not in (CASINO_HEADER, BINANCE_KLINE_HEADER[:6]):
                raise DataError(f"{path}:{lineno}: unknown header {row[:6]}")
            continue
        if width is None:
            width = len(row)
            if width not in (6, 12):
                raise DataError(f"{path}:{lineno}: expected 6 or 12 columns, got {width}")
        if len(row) != width:
            raise DataError(f"{path}:{lineno}: expected {width} columns, got {len(row)}")
        try:
            t = int(first)
            values = [float(row[k]) for k in range(1, 6)]
        except ValueError:
            raise DataError(f"{path}:{lineno}: not a number in {row[:6]}") from None
        if t >= _US_THRESHOLD:
            t //= 1000
        times.append(t)
        for k in range(5):
            cols[k].append(values[k])
        lines.append(lineno)
    if not times:
        raise DataError(f"{path}: no candles")
    series = _validated(
        path, symbol, timeframe,
        np.asarray(times, dtype=np.int64), *(np.asarray(c, dtype=np.float64) for c in cols),
        lines=np.asarray(lines, dtype=np.int64),
    )
    if series.gaps:
        log.info(
            "%s: %d gaps, %d bars missing (first after %d)",
            path.name, len(series.gaps), series.missing_bars, series.gaps[0].after_ms,
        )
    return series


def _validated(
    path: Path, symbol: str, timeframe: Timeframe, t: np.ndarray, o: np.ndarray, h: np.ndarray,
    low: np.ndarray, c: np.ndarray, v: np.ndarray, *, lines: np.ndarray,
) -> CandleSeries:
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c) & np.isfinite(v)
    bad = ~finite | (h < np.maximum(o, c)) | (low > np.minimum(o, c)) | (v < 0) | (low <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{path}:{lines[i]}: inconsistent candle at {int(t[i])} "
            f"(o={o[i]} h={h[i]} l={low[i]} c={c[i]} v={v[i]}): need high ≥ max(open, close), "
            "low ≤ min(open, close), volume ≥ 0"
        )
    if (t % timeframe.ms != 0).any():
        i = int(np.argmax(t % timeframe.ms != 0))
        raise DataError(f"{path}:{lines[i]}: open time {int(t[i])} is not aligned to {timeframe.value}")
    dt = np.diff(t)
    keep = np.ones(len(t), dtype=bool)
    dupes: list[int] = []
    if (dt <= 0).any():
        for i in np.nonzero(dt <= 0)[0]:
            j = i + 1
            same = dt[i] == 0 and o[i] == o[j] and h[i] == h[j] and low[i] == low[j] and c[i] == c[j] and v[i] == v[j]
            if not same:
                what = "duplicate open time with different values" if dt[i] == 0 else "open time goes backwards"
                raise DataError(f"{path}:{lines[j]}: {what} ({int(t[i])} then {int(t[j])})")
            keep[j] = False
            dupes.append(int(t[j]))
        log.warning("%s: dropped %d exact duplicate rows", path.name, len(dupes))
        t, o, h, low, c, v = (a[keep] for a in (t, o, h, low, c, v))
        dt = np.diff(t)
    gap_idx = np.nonzero(dt > timeframe.ms)[0]
    gaps = tuple(
        Gap(int(t[i]), int(t[i + 1]), int(dt[i] // timeframe.ms) - 1) for i in gap_idx
    )
    return CandleSeries(symbol, timeframe, t, o, h, low, c, v, gaps, tuple(dupes), str(path))


def load_funding(path: str | os.PathLike[str], *, symbol: str | None = None) -> FundingSeries:
    """Load funding settlements (Casino's or Binance's public-data layout)."""
    path = Path(path)
    symbol = symbol or path.name.split("-")[0]
    times: list[int] = []
    rates: list[str] = []
    rate_col = 1
    for lineno, row in _rows(path):
        first = row[0].strip()
        if not times and not first.isdigit():
            header = [x.strip().lower() for x in row]
            if header == ["open_time_ms", "funding_rate"]:
                rate_col = 1
            elif header[:1] == ["calc_time"] and "last_funding_rate" in header:
                rate_col = header.index("last_funding_rate")
            else:
                raise DataError(f"{path}:{lineno}: unknown funding header {row}")
            continue
        try:
            t = int(first)
            text = row[rate_col].strip()
            Decimal(text)
            float(text)
        except (ValueError, IndexError, ArithmeticError):
            raise DataError(f"{path}:{lineno}: malformed funding row {row}") from None
        if t >= _US_THRESHOLD:
            t //= 1000
        if times and t <= times[-1]:
            raise DataError(f"{path}:{lineno}: funding time {t} does not increase")
        times.append(t)
        rates.append(text)
    if not times:
        raise DataError(f"{path}: no funding rows")
    return FundingSeries(
        symbol, np.asarray(times, dtype=np.int64), np.asarray([float(r) for r in rates]),
        tuple(rates), str(path),
    )


def load_mark_prices(path: str | os.PathLike[str], *, symbol: str | None = None) -> CandleSeries:
    """Mark-price klines (Casino's ``*-8h-markprice`` files use the candle layout)."""
    path = Path(path)
    return load_candles(path, symbol=symbol or path.name.split("-")[0], timeframe=Timeframe.H8)


# ------------------------------------------------------------------------ resampling


def resample(series: CandleSeries, timeframe: Timeframe) -> CandleSeries:
    """Aggregate to a higher timeframe exactly as Binance does (see the module docstring)."""
    if timeframe.ms <= series.timeframe.ms or timeframe.ms % series.timeframe.ms:
        raise ValueError(f"cannot resample {series.timeframe.value} into {timeframe.value}")
    per = timeframe.ms // series.timeframe.ms
    t = series.open_time
    starts, out_t = _buckets(t, timeframe.ms)
    ends = np.r_[starts[1:], len(t)]
    counts = ends - starts
    first_full = bool(counts[0] == per) if len(counts) else False
    last_full = bool(counts[-1] == per) if len(counts) else False
    out_o = series.open[starts]
    out_c = series.close[ends - 1]
    out_h = np.maximum.reduceat(series.high, starts)
    out_l = np.minimum.reduceat(series.low, starts)
    out_v = np.add.reduceat(series.volume, starts)
    lo = 0 if first_full else 1
    hi = len(starts) if last_full else len(starts) - 1
    sl = slice(lo, max(lo, hi))
    out = CandleSeries(
        series.symbol, timeframe, out_t[sl], out_o[sl], out_h[sl], out_l[sl], out_c[sl], out_v[sl],
        source=f"{series.source} → {timeframe.value}",
    )
    dt = np.diff(out.open_time)
    gap_idx = np.nonzero(dt > timeframe.ms)[0]
    gaps = tuple(Gap(int(out.open_time[i]), int(out.open_time[i + 1]), int(dt[i] // timeframe.ms) - 1) for i in gap_idx)
    return CandleSeries(
        out.symbol, out.timeframe, out.open_time, out.open, out.high, out.low, out.close, out.volume,
        gaps, (), out.source,
    )


def _buckets(t: np.ndarray, bucket_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row, open time) of every non-empty ``bucket_ms`` bucket of the sorted times ``t``.

    One search per bucket the times span rather than a modulo per row (an int64 division
    costs more than the rest of a resample); when the times are sparser than their buckets
    (long gaps) the per-row way is cheaper and is taken."""
    if not len(t):
        return np.zeros(0, dtype=np.intp), t[:0]
    first = int(t[0]) - int(t[0]) % bucket_ms
    spanned = (int(t[-1]) - first) // bucket_ms + 1
    if spanned > len(t):
        buckets = t - t % bucket_ms
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        return starts, buckets[starts]
    edges = first + bucket_ms * np.arange(spanned, dtype=t.dtype)
    rows = np.searchsorted(t, edges)
    filled = rows < np.r_[rows[1:], len(t)]
    return rows[filled], edges[filled]


# ------------------------------------------------------------------------- locating


def find_data_dir(explicit: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Path:
    """Where recorded data lives: ``explicit`` (--data-dir / CASINO_DATA_DIR), else ./data,
    else ../shared/data (relative to the working directory, then to the repository)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataError(f"data directory {path} does not exist (set --data-dir or CASINO_DATA_DIR)")
        return path
    env = os.environ.get("CASINO_DATA_DIR")
    if env:
        return find_data_dir(env)
    cwd = cwd or Path.cwd()
    repo = Path(__file__).resolve().parent.parent
    for candidate in (cwd / "data", cwd.parent / "shared" / "data", repo / "data", repo.parent / "shared" / "data"):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise DataError(
        "no recorded data found: looked in ./data and ../shared/data; "
        "point --data-dir (or CASINO_DATA_DIR) at a folder of candle files"
    )


@dataclass(frozen=True)
class DatasetFiles:
    """The files of one symbol in one dataset folder (any may be missing)."""

    symbol: str
    candles: dict[Timeframe, Path]
    funding: Path | None
    mark_price: Path | None


def dataset_files(folder: Path, symbol: str) -> DatasetFiles:
    """Find ``SYMBOL-<tf>.csv[.gz]``, ``SYMBOL-8h-funding…`` and ``SYMBOL-8h-markprice…``."""
    candles: dict[Timeframe, Path] = {}
    funding = mark = None
    for path in sorted(folder.glob(f"{symbol}-*")):
        name = path.name
        if "-funding" in name:
            funding = path
        elif "-markprice" in name:
            mark = path
        else:
            try:
                sym, tf = infer_symbol_timeframe(path)
            except DataError:
                continue
            if sym == symbol:
                candles.setdefault(tf, path)
    return DatasetFiles(symbol, candles, funding, mark)


def available_symbols(folder: Path, timeframe: Timeframe = Timeframe.M1) -> list[str]:
    """Symbols with a candle file of ``timeframe`` in ``folder``."""
    out = []
    for path in sorted(folder.glob(f"*-{timeframe.value}.*")):
        try:
            sym, tf = infer_symbol_timeframe(path)
        except DataError:
            continue
        if tf is timeframe:
            out.append(sym)
    return out
