"""Brackets on the real simulated venue, visited only where something can happen.

The event-driven replay feeds the simulator's matching engine four path points per symbol
and bar. Between a bracket's entry and its exit nothing can happen to it — no trigger is
reached — so this driver feeds the *same* ``MatchingEngine`` (same fills, fees, slippage,
triggers, funding, Decimal ledger) only the points that matter: the entry bar's open, the
bar whose range reaches a trigger (found over numpy arrays) and the funding settlements in
between, with the venue's own ``intra_bar_path`` (pessimistic adverse-first order included).

Time follows the venue: an order decided on bar ``i`` reaches it at bar ``i+1``'s open (the
first path point); the engine learns what happened in a step when that step ends, i.e. at
the next bar's open after the point that changed the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from core.fast_passage import NOT_FOUND
from core.types import ZERO, OrderType, Rounding, Side, WorkingType
from croupier.order_states import PRICE_QUANTUM
from exchanges.sim import algo as algo_rules
from exchanges.sim import convert
from exchanges.sim.errors import SimError
from exchanges.sim.feed import MINUTE_MS, PathPoint, intra_bar_path
from exchanges.sim.venue import Venue

_TOUCH_SLACK = 1e-9  # widen the float range test; the Decimal path has the final word


@dataclass
class OpenBracket:
    """A filled entry with its two closePosition legs resting on the venue."""

    number: int
    symbol: str
    side: Side
    quantity: Decimal
    entry_bar: int  # index (symbol's 1m data) of the bar whose open filled the entry
    entry_ms: int
    entry_price: Decimal
    entry_notional: Decimal
    entry_fee: Decimal
    sl_price: Decimal
    tp_price: Decimal
    sl_algo: int
    tp_algo: int
    confidence: float
    votes: tuple[tuple[str, float], ...]
    exit_bar: int = NOT_FOUND
    exit_point: int = -1
    exit_path: list[PathPoint] = field(default_factory=list)
    funding_start: Decimal = ZERO  # the symbol's funding so far when the bracket opened


@dataclass(frozen=True, slots=True)
class ExitFill:
    """What the exit did on the venue."""

    price: Decimal  # average exit price, as the bracket computes it
    quantity: Decimal
    fees: Decimal
    reason: str  # take_profit | stop_loss | flatten


def _first_range_touch(hi: np.ndarray, lo: np.ndarray, start: int, end: int, upper: float, lower: float) -> int:
    """One question of ``first_touch``, scanned in growing numpy chunks (one bracket at a time)."""
    width = 256
    while start <= end:
        stop = min(end + 1, start + width)
        hit = np.flatnonzero((hi[start:stop] >= upper) | (lo[start:stop] <= lower))
        if hit.size:
            return start + int(hit[0])
        start = stop
        width = min(width * 4, 1 << 16)
    return NOT_FOUND


class SparseVenue:
    """The simulator's venue and matching engine, driven point by point only when needed."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.engine = venue.engine
        self._floats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._bars: dict[tuple[str, int], tuple[Decimal, Decimal, Decimal, Decimal, Decimal]] = {}
        self._paths: dict[tuple[str, int, Side | None], list[PathPoint]] = {}
        self.funding_total: dict[str, Decimal] = {}

    # ------------------------------------------------------------------ prices
    def bar_index(self, symbol: str, open_ms: int) -> int:
        i = self.venue.data[symbol].bar_index(open_ms)
        if i is None:
            raise ValueError(f"{symbol}: no recorded bar at {open_ms}")
        return i

    def decimal_bar(self, symbol: str, i: int) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """The venue's Decimal OHLCV of bar ``i`` (tick-quantized), memoised (bounded)."""
        key = (symbol, i)
        bar = self._bars.get(key)
        if bar is None:
            if len(self._bars) > 100_000:
                self._bars.clear()
            bar = self._bars[key] = self.venue.data[symbol].decimal_bar(i, self.venue.specs[symbol].rules.tick_size)
        return bar

    def path(self, symbol: str, i: int, adverse: Side | None) -> list[PathPoint]:
        """The venue's path through bar ``i`` (``adverse``: the position side at the bar's start)."""
        key = (symbol, i, adverse)
        found = self._paths.get(key)
        if found is not None:
            return found
        if len(self._paths) > 100_000:
            self._paths.clear()
        o, h, low, c, _v = self.decimal_bar(symbol, i)
        m1 = self.venue.data[symbol].m1
        path = self._paths[key] = intra_bar_path(
            o, h, low, c, open_time_ms=int(m1.open_time[i]), steps=self.venue.config.path_steps,
            tick=self.venue.specs[symbol].rules.tick_size, adverse=adverse if self.engine.config.pessimistic else None)
        return path

    def set_price(self, symbol: str, price: Decimal, t_ms: int) -> None:
        self.engine.set_price(symbol, price, t_ms)

    def _hl(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        if symbol not in self._floats:
            m1 = self.venue.data[symbol].m1
            self._floats[symbol] = (m1.high * (1 + _TOUCH_SLACK), m1.low * (1 - _TOUCH_SLACK), m1.close)
        hi, lo, _ = self._floats[symbol]
        return hi, lo

    # ------------------------------------------------------------------ entries
    def enter(self, symbol: str, side: Side, quantity: Decimal, now_ms: int, client_id: str) -> tuple[Decimal, Decimal, Decimal]:
        """MARKET entry at the engine's current price: (fill price, notional, fee). SimError on refusal."""
        before = len(self.engine.trades)
        self.engine.place_order(symbol=symbol, side=side, order_type=OrderType.MARKET, quantity=quantity,
                                now_ms=now_ms, client_order_id=client_id)
        fills = self.engine.trades[before:]
        fee = sum((t.trade.commission for t in fills), ZERO)
        self.engine.drain()
        qty, avg = self._order_fill(fills)
        notional = qty * avg  # the bracket's entry notional: filled quantity × the order's average
        return notional / qty, notional, fee

    def protect(self, symbol: str, side: Side, avg_entry: Decimal, tp_fraction: float, sl_fraction: float,
                now_ms: int, sl_client: str, tp_client: str) -> tuple[Decimal, Decimal, int, int]:
        """The croupier's stop (first) and take-profit, closePosition on the mark price."""
        rules = self.venue.specs[symbol].rules
        exit_side = side.opposite
        sl_raw = avg_entry * (1 - side.sign * Decimal(str(sl_fraction)))
        sl = rules.round_price(sl_raw, Rounding.away_from_market(exit_side))
        tp_raw = avg_entry * (1 + side.sign * Decimal(str(tp_fraction)))
        tp = rules.round_price(tp_raw, Rounding.passive(exit_side))
        sl_algo = self.engine.place_algo(symbol=symbol, side=exit_side, order_type=OrderType.STOP_MARKET, now_ms=now_ms,
                                         quantity=None, trigger_price=sl, working_type=WorkingType.MARK_PRICE,
                                         close_position=True, client_algo_id=sl_client)
        tp_algo = self.engine.place_algo(symbol=symbol, side=exit_side, order_type=OrderType.TAKE_PROFIT_MARKET,
                                         now_ms=now_ms, quantity=None, trigger_price=tp,
                                         working_type=WorkingType.MARK_PRICE, close_position=True,
                                         client_algo_id=tp_client)
        self.engine.drain()
        return sl, tp, sl_algo.algo_id, tp_algo.algo_id

    # ------------------------------------------------------------------ exits
    def find_exit(self, b: OpenBracket, last_bar: int) -> None:
        """Set ``b.exit_bar/exit_point/exit_path``: the first path point (after the entry) at
        which a leg triggers, or leave ``NOT_FOUND`` if none does by ``last_bar``."""
        hi, lo = self._hl(b.symbol)
        long = b.side is Side.BUY
        upper = float(b.tp_price if long else b.sl_price)
        lower = float(b.sl_price if long else b.tp_price)
        start = b.entry_bar
        while start <= last_bar:
            j = _first_range_touch(hi, lo, start, last_bar, upper, lower)
            if j == NOT_FOUND:
                return
            path = self.path(b.symbol, j, None if j == b.entry_bar else b.side)
            first = 1 if j == b.entry_bar else 0
            for k in range(first, len(path)):
                if self._fires(b, path[k].price):
                    b.exit_bar, b.exit_point, b.exit_path = j, k, path
                    return
            start = j + 1

    def _fires(self, b: OpenBracket, price: Decimal) -> bool:
        exit_side = b.side.opposite
        return (algo_rules.condition_met(OrderType.STOP_MARKET, exit_side, b.sl_price, price)
                or algo_rules.condition_met(OrderType.TAKE_PROFIT_MARKET, exit_side, b.tp_price, price))

    def play_exit(self, b: OpenBracket) -> ExitFill:
        """Feed the exit bar's points up to the triggering one; the engine fills the leg."""
        m1 = self.venue.data[b.symbol].m1
        if b.exit_bar != b.entry_bar and b.exit_point == 0:
            # the previous point (a gap's reference) is the prior bar's close
            prev_close = self.decimal_bar(b.symbol, b.exit_bar - 1)[3]
            self.set_price(b.symbol, prev_close, int(m1.open_time[b.exit_bar - 1]) + MINUTE_MS - 1)
        first = 1 if b.exit_bar == b.entry_bar else 0
        before = len(self.engine.trades)
        for k in range(first, b.exit_point + 1):
            point = b.exit_path[k]
            self.set_price(b.symbol, point.price, point.time_ms)
        fills = [t for t in self.engine.trades[before:] if t.symbol == b.symbol]
        self.engine.drain()
        if self.engine.account.position(b.symbol).qty != 0 or not fills:
            raise RuntimeError(f"fast replay: {b.symbol} bracket {b.number} did not close at its trigger point")
        tp_fired = self.engine.algos[b.tp_algo].status.value in ("TRIGGERED", "FINISHED")
        return self._exit_fill(fills, "take_profit" if tp_fired else "stop_loss")

    def flatten(self, b: OpenBracket, price: Decimal, now_ms: int, client_id: str) -> ExitFill:
        """Shutdown: the position is closed with a reduce-only MARKET at ``price`` (the last point)."""
        self.set_price(b.symbol, price, now_ms)
        before = len(self.engine.trades)
        qty = self.venue.specs[b.symbol].rules.round_qty(b.quantity, market=True)
        self.engine.place_order(symbol=b.symbol, side=b.side.opposite, order_type=OrderType.MARKET, quantity=qty,
                                now_ms=now_ms, reduce_only=True, client_order_id=client_id)
        fills = self.engine.trades[before:]
        self.engine.drain()
        return self._exit_fill(fills, "flatten")

    def _order_fill(self, fills: list) -> tuple[Decimal, Decimal]:
        """(executed quantity, average price) of the order these fills belong to, as the
        user stream reports it to the croupier (``exchanges.sim.convert``)."""
        order = convert.order(self.engine.orders[fills[-1].order_id].snapshot())
        # the croupier books a fill it derives from the order's average at PRICE_QUANTUM
        return order.executed_qty, order.avg_price.quantize(PRICE_QUANTUM)

    def _exit_fill(self, fills: list, reason: str) -> ExitFill:
        qty, avg = self._order_fill(fills)
        fees = sum((t.trade.commission for t in fills), ZERO)
        return ExitFill(qty * avg / qty, qty, fees, reason)

    def funding(self, t_ms: int, open_symbols: list[str], prev_close: dict[str, tuple[Decimal, int]]) -> None:
        """Settle funding at ``t_ms`` for every symbol, as the venue does (recorded 8h mark, else
        the current price — set first for open positions, whose last point may be stale here)."""
        for sym in self.venue.data:
            pos = self.engine.account.positions.get(sym)
            if pos is None or not pos.qty:
                continue  # the account settles nothing on a flat position (Account.apply_funding)
            mark = self.venue.recorded_mark(sym, t_ms)
            if mark is None and sym in open_symbols and sym in prev_close:
                price, at = prev_close[sym]
                self.set_price(sym, price, at)
            paid = self.engine.apply_funding(sym, self.venue.funding_rate(sym, t_ms), t_ms, mark)
            if paid:
                self.funding_total[sym] = self.funding_total.get(sym, ZERO) + paid
        self.engine.drain()

    def wallet(self) -> Decimal:
        return self.engine.account.wallet

    def funding_so_far(self, symbol: str) -> Decimal:
        """Funding booked on ``symbol`` since the start (signed, + received); a bracket's funding
        is the difference between its close and its opening, as the croupier computes it."""
        return self.funding_total.get(symbol, ZERO)

    def account_setup(self, symbols: list[str], margin_type: str) -> None:
        """The croupier's start: one-way mode and the margin type on every session symbol."""
        from core.types import MarginType

        for symbol in symbols:
            try:
                self.engine.set_margin_type(symbol, MarginType(margin_type), self.venue.now_ms)
            except SimError as exc:
                if exc.code != -4046:
                    raise
        self.engine.drain()
