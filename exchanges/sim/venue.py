"""The simulated venue: recorded data driving the matching engine through simulated time.

``Venue.advance_to(t_ms)`` walks every 1m bar of every symbol up to ``t_ms``, feeds the
intra-bar path to the engine point by point (symbols interleaved in time order), settles
funding at each 8 h boundary and returns everything that happened: the engine's user
events and, for the streams, market events (``KlineTick`` in-progress and closed,
``MarkTick``, ``TradeTick``). The venue never reads a clock: the caller (the server's clock
loop, ``local.py``'s replay, a test) decides what time it is, so REST, websockets and
matching always agree on the simulated time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from core.errors import DataError
from core.types import Candle, Side, Timeframe
from exchanges.sim.feed import (
    MINUTE_MS,
    PathPoint,
    SymbolData,
    funding_times_between,
    intra_bar_path,
    load_symbol_data,
    next_funding_time,
)
from exchanges.sim.matching import EngineConfig, MatchingEngine
from exchanges.sim.records import SimEvent
from exchanges.sim.rules import SymbolSpec, spec_for


PRUNE_EVERY_MS = 3_600_000  # forget expired history once per simulated hour


@dataclass(frozen=True, slots=True)
class KlineTick:
    """A 1m kline update: in progress (``candle.closed`` False) or the closed bar."""

    candle: Candle
    time_ms: int
    first_trade_id: int
    last_trade_id: int
    trades: int


@dataclass(frozen=True, slots=True)
class MarkTick:
    symbol: str
    mark: Decimal
    funding_rate: Decimal
    next_funding_ms: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class TradeTick:
    """A market trade at a path point (aggTrade)."""

    symbol: str
    agg_id: int
    price: Decimal
    qty: Decimal
    buyer_maker: bool
    time_ms: int


MarketTick = KlineTick | MarkTick | TradeTick


@dataclass(frozen=True, slots=True)
class VenueConfig:
    path_steps: int = 4
    default_funding_rate: Decimal = Decimal("0.0001")
    intrabar_events: bool = True  # False: only closed klines and the marks (replays)


class Venue:
    """Engine + recorded data + simulated time."""

    def __init__(self, data: dict[str, SymbolData], engine_config: EngineConfig | None = None,
                 config: VenueConfig | None = None, *, start_ms: int | None = None,
                 warmup_bars: int = 1500) -> None:
        if not data:
            raise DataError("the simulator needs at least one symbol with recorded 1m candles")
        self.config = config or VenueConfig()
        self.data = data
        self.specs: dict[str, SymbolSpec] = {
            sym: spec_for(sym, Decimal(repr(float(d.m1.open[0])))) for sym, d in data.items()
        }
        self.engine = MatchingEngine(self.specs.values(), engine_config)
        first = max(d.m1.first_open_ms for d in data.values())
        self.end_ms = min(d.m1.last_open_ms for d in data.values()) + MINUTE_MS - 1
        self.start_ms = start_ms if start_ms is not None else first + warmup_bars * MINUTE_MS
        self.start_ms = min(self.start_ms, self.end_ms)
        self.now_ms = self.start_ms - 1
        self._next_bar_ms = self.start_ms - self.start_ms % MINUTE_MS
        self._agg_id = 0
        self._partial: dict[str, Candle] = {}
        self._bar: tuple[int, dict[str, list[PathPoint]], dict[str, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]] | None = None
        self._k = 0
        # The bar in progress at the start time has already begun: seed prices with its open.
        for sym in data:
            self._seed(sym)
        # Starting on a minute boundary, the clock stands on the last millisecond of the bar
        # before: not closed yet by Binance's rule (closed once the time is past its close time),
        # so a client's warm-up leaves it out, and its close is published as soon as time moves
        # on, before the first bar is played — as Binance's stream publishes the close of the
        # bar in progress when a client connected. Without it every session began with a hole.
        self._closing_bar_ms: int | None = (
            self._next_bar_ms - MINUTE_MS if self.now_ms == self._next_bar_ms - 1 else None)

    @classmethod
    def from_folder(cls, folder: Path, symbols: Sequence[str], *, engine_config: EngineConfig | None = None,
                    config: VenueConfig | None = None, start_ms: int | None = None,
                    warmup_bars: int = 1500) -> Venue:
        """Load ``SYMBOL-1m`` (+ funding, mark price) files of ``symbols`` from a dataset folder."""
        data = {s: load_symbol_data(folder, s) for s in symbols}
        return cls(data, engine_config, config, start_ms=start_ms, warmup_bars=warmup_bars)

    def _seed(self, symbol: str) -> None:
        d = self.data[symbol]
        prev_open = self._next_bar_ms - MINUTE_MS
        i = d.bar_index(prev_open)
        if i is None:
            i = d.bar_index(self._next_bar_ms)
            if i is None:
                return
            price = d.decimal_bar(i, self.specs[symbol].rules.tick_size)[0]
        else:
            price = d.decimal_bar(i, self.specs[symbol].rules.tick_size)[3]
        self.engine.set_price(symbol, price, self.now_ms)
        self.engine.drain()

    def funding_rate(self, symbol: str, time_ms: int) -> Decimal:
        rate = self.data[symbol].funding_rate_at(time_ms)
        return rate if rate is not None else self.config.default_funding_rate

    def current_funding_estimate(self, symbol: str) -> Decimal:
        return self.funding_rate(symbol, next_funding_time(self.now_ms))

    def partial_candle(self, symbol: str) -> Candle | None:
        return self._partial.get(symbol)

    def next_point_ms(self) -> int | None:
        """Simulated time of the next path point to play (None once the data has ended)."""
        if self._bar is None:
            return self._next_bar_ms if self._next_bar_ms <= self.end_ms else None
        bar_open, paths, _bars = self._bar
        return next(iter(paths.values()))[self._k].time_ms if paths else bar_open

    def advance_to(self, t_ms: int) -> tuple[list[SimEvent], list[MarketTick]]:
        """Process every path point with time ≤ ``t_ms``; returns (user events, market ticks)."""
        market: list[MarketTick] = []
        if t_ms <= self.now_ms:
            return self.engine.drain(), market
        steps = self.config.path_steps
        if self._closing_bar_ms is not None:
            self._close_bar_in_progress(self._closing_bar_ms, market)
            self._closing_bar_ms = None
        while True:
            if self._bar is None:
                if self._next_bar_ms > min(t_ms, self.end_ms):
                    break
                self._settle_funding(self.now_ms, self._next_bar_ms, market)
                self._start_bar(self._next_bar_ms)
            assert self._bar is not None
            bar_open, paths, bars = self._bar
            while self._k < steps:
                time_k = next(iter(paths.values()))[self._k].time_ms if paths else bar_open
                if time_k > t_ms:
                    break
                self._play_point(self._k, bar_open, paths, bars, market)
                self.now_ms = time_k
                self._k += 1
            if self._k < steps:
                break
            self._bar = None
            self._next_bar_ms = bar_open + MINUTE_MS
            self.now_ms = bar_open + MINUTE_MS - 1
            if self._next_bar_ms % PRUNE_EVERY_MS == 0:
                self.engine.prune(self.now_ms)
        self._settle_funding(self.now_ms, t_ms, market)
        self.now_ms = max(self.now_ms, t_ms)
        return self.engine.drain(), market

    def _close_bar_in_progress(self, bar_open: int, market: list[MarketTick]) -> None:
        """Publish the close of the recorded bar ``bar_open`` whose last millisecond is now (the
        start): its prices were played before the start (``_seed`` set its close), so only the
        closed kline and the mark go out."""
        close_ms = bar_open + MINUTE_MS - 1
        for sym, d in self.data.items():
            i = d.bar_index(bar_open)
            if i is None:
                continue
            o, h, low, c, v = d.decimal_bar(i, self.specs[sym].rules.tick_size)
            candle = Candle(sym, Timeframe.M1, bar_open, o, h, low, c, v, closed=True,
                            quote_volume=(v * c).quantize(Decimal("0.0001")), trades=self.config.path_steps)
            self._partial[sym] = candle
            self._agg_id += 1
            market.append(KlineTick(candle, close_ms, self._agg_id, self._agg_id, 1))
            market.append(MarkTick(sym, c, self.current_funding_estimate(sym), next_funding_time(close_ms), close_ms))

    def _settle_funding(self, after_ms: int, until_ms: int, market: list[MarketTick]) -> None:
        for ft in funding_times_between(after_ms, until_ms):
            for sym in self.data:
                self.engine.apply_funding(sym, self.funding_rate(sym, ft), ft, self.recorded_mark(sym, ft))

    def recorded_mark(self, symbol: str, time_ms: int) -> Decimal | None:
        """The recorded mark price at a funding time (open of the 8h mark kline), if any."""
        m = self.data[symbol].mark_8h
        if m is None:
            return None
        i = int(np.searchsorted(m.open_time, time_ms))
        if i < len(m) and int(m.open_time[i]) == time_ms:
            return m.candle(i).open
        return None

    def _start_bar(self, bar_open: int) -> None:
        steps = self.config.path_steps
        paths: dict[str, list[PathPoint]] = {}
        bars: dict[str, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]] = {}
        pessimistic = self.engine.config.pessimistic
        for sym, d in self.data.items():
            i = d.bar_index(bar_open)
            if i is None:
                continue  # a gap in the recording: no trades this minute
            tick = self.specs[sym].rules.tick_size
            o, h, low, c, v = d.decimal_bar(i, tick)
            qty = self.engine.account.position(sym).qty
            adverse = (Side.BUY if qty > 0 else Side.SELL if qty < 0 else None) if pessimistic else None
            paths[sym] = intra_bar_path(o, h, low, c, open_time_ms=bar_open, steps=steps, tick=tick,
                                        adverse=adverse)
            bars[sym] = (o, h, low, c, v)
        self._bar = (bar_open, paths, bars)
        self._k = 0

    def _play_point(self, k: int, bar_open: int, paths: dict[str, list[PathPoint]],
                    bars: dict[str, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]],
                    market: list[MarketTick]) -> None:
        steps = self.config.path_steps
        intrabar = self.config.intrabar_events
        closed = k == steps - 1
        for sym, path in paths.items():
            point = path[k]
            prev = self.engine.last_price(sym)
            self.engine.set_price(sym, point.price, point.time_ms)
            if not (intrabar or closed):
                # Replays need only the closed bar: no in-progress candles. The mark still moves
                # at every point, as a paper session sees it (markPrice@1s): the equity that sizes
                # an entry marks the other open positions at the same prices in both modes.
                market.append(MarkTick(sym, point.price, self.current_funding_estimate(sym),
                                       next_funding_time(point.time_ms), point.time_ms))
                continue
            o, _h, _l, _c, v = bars[sym]
            part = self._partial.get(sym)
            if closed:
                hi, lo = bars[sym][1], bars[sym][2]
            elif part is None or part.open_time_ms != bar_open:
                hi = lo = point.price
            else:
                hi, lo = max(part.high, point.price), min(part.low, point.price)
            vol = v if closed else (v * (k + 1) / steps).quantize(Decimal("0.001"))
            candle = Candle(sym, Timeframe.M1, bar_open, o, hi, lo, point.price, vol, closed=closed,
                            quote_volume=(vol * point.price).quantize(Decimal("0.0001")), trades=k + 1)
            self._partial[sym] = candle
            self._agg_id += 1
            if intrabar or closed:
                market.append(KlineTick(candle, point.time_ms, self._agg_id - k, self._agg_id, k + 1))
            if intrabar:
                market.append(TradeTick(sym, self._agg_id, point.price, (v / steps).quantize(Decimal("0.001")),
                                        prev is not None and point.price < prev, point.time_ms))
            if intrabar or closed:
                market.append(MarkTick(sym, point.price, self.current_funding_estimate(sym),
                                       next_funding_time(point.time_ms), point.time_ms))

    def kline_in_progress(self, symbol: str, timeframe: Timeframe) -> Candle | None:
        """The bar of ``timeframe`` in progress now (None between bars)."""
        part = self._partial.get(symbol)
        if part is None or part.closed:
            return None
        return self.aggregate(part, timeframe)

    def aggregate(self, part: Candle, timeframe: Timeframe) -> Candle:
        """The ``timeframe`` bar containing the 1m bar ``part``: the bucket's earlier (closed) 1m
        bars plus ``part`` as it stands; closed when ``part`` closes the bucket."""
        if timeframe is Timeframe.M1:
            return part
        d = self.data[part.symbol]
        start = timeframe.bucket_start(part.open_time_ms)
        s = d.m1
        lo = int(np.searchsorted(s.open_time, start))
        hi = int(np.searchsorted(s.open_time, part.open_time_ms))
        tick = self.specs[part.symbol].rules.tick_size
        o, h, low, vol = part.open, part.high, part.low, part.volume
        if hi > lo:
            o = d.decimal_bar(lo, tick)[0]
            for i in range(lo, hi):
                _bo, bh, bl, _bc, bv = d.decimal_bar(i, tick)
                h, low, vol = max(h, bh), min(low, bl), vol + bv
        closed = part.closed and part.open_time_ms + MINUTE_MS == start + timeframe.ms
        return Candle(part.symbol, timeframe, start, o, h, low, part.close, vol, closed=closed,
                      quote_volume=(vol * part.close).quantize(Decimal("0.0001")), trades=part.trades)
