"""Recorded real candles → the simulator's price path, klines history and funding.

**Intra-bar path.** Each 1m candle becomes ``steps`` points (``steps ≥ 4``): open → the
nearer extreme → the other extreme → close, with the points spread evenly over the three
legs by linear interpolation (rounded to the tick) and evenly in time over the minute
(first point at the open time, last at the close time ``open + 59 999 ms``). When
``adverse`` is given (the side of the account's open position on the symbol, pessimistic
mode), the extreme that hurts that position comes first — a long sees the low first, a
short the high — so a stop and a take-profit inside the same bar resolve stop-first.
Ties (open equally far from both extremes) go to the high first.

**Mark price** follows the path (Binance's mark is an index-based average the recorded
candles cannot reproduce); the recorded 8h mark-price klines, when present, give the mark price
funding settles on (the kline's open at the settlement time) and ``markPrice`` in
``GET /fapi/v1/fundingRate``. **Funding** settles every 8 h (00:00, 08:00,
16:00 UTC) at the recorded rate for that time, else the configured default rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.history import CandleSeries, FundingSeries, dataset_files, load_candles, load_funding, load_mark_prices, resample
from core.types import Candle, Side, Timeframe

MINUTE_MS = 60_000
FUNDING_INTERVAL_MS = 8 * 3_600_000


@dataclass(frozen=True, slots=True)
class PathPoint:
    time_ms: int
    price: Decimal


def intra_bar_path(
    open_: Decimal, high: Decimal, low: Decimal, close: Decimal, *, open_time_ms: int, steps: int,
    tick: Decimal, adverse: Side | None = None,
) -> list[PathPoint]:
    """The documented path through one 1m candle (see the module docstring)."""
    if steps < 4:
        raise ValueError("steps must be at least 4 (open, two extremes, close)")
    if adverse is Side.BUY:  # a long position: the low hurts it, visit it first
        first, second = low, high
    elif adverse is Side.SELL:
        first, second = high, low
    elif abs(high - open_) <= abs(open_ - low):
        first, second = high, low
    else:
        first, second = low, high
    anchors = [open_, first, second, close]
    segments = steps - 1
    per_leg = [segments // 3 + (1 if i < segments % 3 else 0) for i in range(3)]
    prices: list[Decimal] = [open_]
    for leg, count in enumerate(per_leg):
        a, b = anchors[leg], anchors[leg + 1]
        for k in range(1, count + 1):
            if k == count:
                prices.append(b)
            else:
                p = a + (b - a) * k / count
                prices.append((p / tick).to_integral_value(ROUND_HALF_EVEN) * tick)
    span = MINUTE_MS - 1
    last = len(prices) - 1
    return [PathPoint(open_time_ms + (span * i) // last, p) for i, p in enumerate(prices)]


def funding_times_between(after_ms: int, until_ms: int) -> list[int]:
    """Funding settlement times t with after_ms < t ≤ until_ms."""
    first = (after_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
    return list(range(first, until_ms + 1, FUNDING_INTERVAL_MS))


def next_funding_time(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


@dataclass
class SymbolData:
    """One symbol's recorded 1m candles, funding and mark prices."""

    symbol: str
    m1: CandleSeries
    funding: FundingSeries | None = None
    mark_8h: CandleSeries | None = None
    _resampled: dict[Timeframe, CandleSeries] = field(default_factory=dict)

    def series(self, timeframe: Timeframe) -> CandleSeries:
        if timeframe is Timeframe.M1:
            return self.m1
        if timeframe not in self._resampled:
            self._resampled[timeframe] = resample(self.m1, timeframe)
        return self._resampled[timeframe]

    def bar_index(self, open_ms: int) -> int | None:
        i = int(np.searchsorted(self.m1.open_time, open_ms))
        if i < len(self.m1) and int(self.m1.open_time[i]) == open_ms:
            return i
        return None

    def decimal_bar(self, i: int, tick: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        s = self.m1

        def q(x: float) -> Decimal:
            return (Decimal(repr(float(x))) / tick).to_integral_value(ROUND_HALF_EVEN) * tick

        return q(s.open[i]), q(s.high[i]), q(s.low[i]), q(s.close[i]), Decimal(repr(float(s.volume[i])))

    def funding_rate_at(self, time_ms: int) -> Decimal | None:
        return self.funding.rate_at(time_ms) if self.funding is not None else None


def load_symbol_data(folder: Path, symbol: str) -> SymbolData:
    """Load ``SYMBOL-1m`` (required), funding and mark-price files from a dataset folder."""
    files = dataset_files(folder, symbol)
    path = files.candles.get(Timeframe.M1)
    if path is None:
        raise DataError(f"no 1m candle file for {symbol} in {folder}")
    m1 = load_candles(path, symbol=symbol, timeframe=Timeframe.M1)
    funding = load_funding(files.funding, symbol=symbol) if files.funding else None
    mark = load_mark_prices(files.mark_price, symbol=symbol) if files.mark_price else None
    return SymbolData(symbol, m1, funding, mark)


def kline_rows(data: SymbolData, timeframe: Timeframe, *, now_ms: int, start_ms: int | None,
               end_ms: int | None, limit: int) -> list[Candle]:
    """Closed candles of ``timeframe`` whose close time is before ``now_ms`` (simulated time),
    filtered like Binance's klines: from ``start_ms`` forward, else the latest ``limit``."""
    s = data.series(timeframe)
    t = s.open_time
    closed_hi = int(np.searchsorted(t, now_ms - timeframe.ms, side="right"))
    lo, hi = 0, closed_hi
    if end_ms is not None:
        hi = min(hi, int(np.searchsorted(t, end_ms, side="right")))
    if start_ms is not None:
        lo = int(np.searchsorted(t, start_ms, side="left"))
        hi = min(hi, lo + limit)
    else:
        lo = max(0, hi - limit)
    return list(s.candles(lo, max(lo, hi)))
