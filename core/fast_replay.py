"""``python main.py replay --fast``: the event-driven replay's results, computed a second way.

The engine path plays every 1m bar of every symbol through sensors, tracker, player, risk,
croupier and the simulated venue. Here every per-bar step is numpy over whole histories and
the real components run only where something can happen:

1. readings: ``core.fast_readings`` (batch signals, higher timeframes visible once closed);
2. tracker: every vote judged by ``core.fast_passage`` (first passage, stop first), each
   sensor key's outcome sequence in the tracker's order (``core.fast_tracker``);
3. consensus: ``core.fast_consensus`` classifies every bar; the real ``core.player.decide``
   answers every deciding or unsure bar, its voters with a signal scored by a real
   ``SensorTracker`` rebuilt for that instant (``_decide``: a voter without a signal only
   qualifies or not, which the approximate score settles when it is clear of ``min_score``);
4. trades: decisions in time order, with exits and funding, through the real ``core.sizing``,
   ``core.risk.RiskGate`` and the simulator's ``MatchingEngine`` (``core.fast_trades``);
5. the same ``core.report`` session report.

What it does not reproduce it refuses up front (``unsupported``: exit 2 naming the option),
and a run that comes near a rule it does not model (the daily loss halt) stops with an error
instead of approximating. tests/test_fast_replay_parity.py compares both paths trade by trade.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import Settings
from core.clock import FakeClock
from core.errors import ConfigError, DataError
from core.events import Decision, SensorReading
from core.fast_consensus import CODE, DECISION, TOLERANCE, BarInputs, classify
from core.fast_passage import NOT_FOUND, RangeTables, judge_votes
from core.fast_readings import (
    SignalTable,
    TimeframeReadings,
    stack_tables,
    symbol_readings,
)
from core.fast_tracker import (
    BlockScores,
    KeyEvents,
    PackedEvents,
    approx_score,
    exact_tracker,
    pack_events,
)
from core.fast_trades import OpenBracket, SparseVenue
from core.history import find_data_dir
from core.metrics import RISK_REJECTIONS
from core.player import Bar, PlayerParams, SymbolBook, debounce, decide, winning_keys
from core.report import SessionRecord, TradeRecord
from core.risk import EntryIntent, Exposure, RiskGate, RiskParams
from core.sensor_plan import build_plan
from core.sensor_tracker import PerformanceStats, TrackerParams, sensor_key
from core.sizing import (
    Size,
    SizeSkip,
    SizingMode,
    SizingParams,
    kelly_fraction,
    size_entry,
)
from core.types import Candle, Side, SymbolRules, Timeframe
from croupier.ids import Leg, bracket_id, client_id, session_tag
from exchanges.sim.errors import SimError
from exchanges.sim.feed import MINUTE_MS, funding_times_between
from exchanges.sim.local import engine_config, venue_config
from exchanges.sim.venue import Venue
from sensors.registry import builtin_sensors

log = logging.getLogger(__name__)

M = MINUTE_MS
QUOTE = "USDT"
# columns (bar × symbol) per consensus block: its (voters × columns) float arrays stay a few MB, which glibc's malloc
# reuses from its heap; 65,536-bar blocks (~140 MB a temporary) were mmapped afresh for every
# temporary and page-faulted in, which cost more than the arithmetic (default ensemble, 1 symbol
# × 100 k bars, one run each: 4.6 s at 65,536, 2.2 s at 16,384, 2.0 s at 4,096)
_BLOCK = 4096
# votes (sensors × fresh bars) judged at once in _track: a few MB per array, for the same reason
_VOTES_PER_CHUNK = 1 << 20
_PHASE_FUNDING, _PHASE_EXIT, _PHASE_DECIDE = 0, 1, 2
# tracker statistics giving the two smallest sizes kelly sizing can choose: the fallback
# (too few resolved votes) and min_fraction (losses only)
_SMALLEST_SIZES = (PerformanceStats(0, 0, 0, 0.0, 0.0), PerformanceStats(10**9, 0, 10**9, 0.0, 1.0))
# the gate's refusals decided before it reads the exposure's equity and notionals (only which
# symbols are occupied): with an exposure bound they are the refusals of the real exposure
_EXPOSURE_FREE_REFUSALS = frozenset({"halted", "reducing", "not_allowlisted", "outside_universe", "stale_data",
                                     "loss_cooldown", "order_rate", "bracket_open", "max_positions"})
_MAX_POSITIONS = "max_positions"
# sizing refusals made before size_entry reads the decision (_no_room_whatever_the_decision)
_DECISION_FREE_SIZE_SKIPS = frozenset({"symbol_not_trading", "no_equity", "no_headroom"})
# relative margin of the float test in _sure_fit_window: far above float rounding (1e-16) and the
# 28-digit Decimal division in size_entry (1e-27), far below any real distance to a sizing limit
_FIT_MARGIN = 1e-9


def unsupported(s: Settings, duration_s: float | None) -> list[tuple[str, str]]:
    """Options the fast path does not reproduce exactly: (key, why). Empty = supported."""
    out = []
    if s.croupier.entry_type != "MARKET":
        out.append(("croupier.entry_type", "LIMIT entries (queue position, timeouts) are not simulated here"))
    if s.croupier.take_profit != "algo":
        out.append(("croupier.take_profit", "only the algo TAKE_PROFIT_MARKET leg is reproduced"))
    if not s.croupier.stop_close_position:
        out.append(("croupier.stop_close_position", "only closePosition legs are reproduced"))
    if s.session.on_exit != "flatten":
        out.append(("session.on_exit", "only the flatten exit policy is reproduced"))
    if s.risk.universe.enabled:
        out.append(("risk.universe.enabled", "the universe selector is not reproduced"))
    if duration_s is not None:
        out.append(("--duration", "the fast path replays the whole dataset; cut the data instead"))
    return out


@dataclass
class _Symbol:
    """One symbol's arrays and state during a fast replay."""

    name: str
    index: int
    first: int  # index (in the symbol's 1m data) of global bar 0
    readings: dict[Timeframe, TimeframeReadings]
    codes: np.ndarray | None = None  # reason code per global bar 0 … G
    last_decision_index: int | None = None
    bracket: OpenBracket | None = None
    decisions: list[int] = field(default_factory=list)  # global bars decided
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # bars classified deciding
    active: list[tuple[int, int]] = field(default_factory=list)  # global bars [from, to] with a bracket
    close: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the symbol's 1m closes (float, untrimmed)
    allowlisted: bool = True


class FastReplay:
    """One fast replay over ``settings`` (see the module docstring)."""

    def __init__(self, settings: Settings, session_id: str, progress: Callable[[str, float], None] | None = None,
                 venue: Venue | None = None) -> None:
        self.s = settings
        self.session_id = session_id
        self.tag = session_tag(session_id)
        self.progress = progress or (lambda phase, fraction: None)
        self.specs = builtin_sensors()  # what the pool's worker processes load (test doubles registered here are not)
        self.plan = build_plan(settings.sensors, self.specs)
        self.player = PlayerParams.from_settings(settings.player)
        self.tracker_params = TrackerParams.from_settings(settings.tracker, settings.player)
        self.sizing = SizingParams.from_settings(settings.sizing)
        sim = settings.sim
        if venue is None:  # ``venue``: already loaded data (benchmarks reuse one load for many runs)
            folder = find_data_dir(settings.session.data_dir) / settings.session.dataset
            venue = Venue.from_folder(folder, settings.session.symbols, engine_config=engine_config(sim),
                                      config=venue_config(sim, intrabar_events=False), warmup_bars=sim.warmup_bars)
        self.venue = venue
        self.sv = SparseVenue(self.venue)
        self.clock = FakeClock(self.venue.now_ms)
        self.start_balance = self.sv.wallet()
        allow = settings.allowlist
        self.risk = RiskGate(RiskParams.from_settings(settings.risk), self.clock, allowlist=allow,
                             start_equity=self.start_balance)
        # global bar 0 is the bar whose close the venue publishes when its clock starts (the
        # engine's first live bar, after the warm-up's last); 0 … G decide
        self.t0 = self.venue.start_ms - M
        self.last_open = self.venue.end_ms - (M - 1)
        self.n_bars = (self.last_open - self.t0) // M
        self.symbols: list[_Symbol] = []
        self.events: dict[str, KeyEvents] = {}  # keys with a vote: views of ``packed``
        self.packed: PackedEvents | None = None  # every voter's events, by voter row (_track)
        self.tables: dict[Timeframe, SignalTable] = {}  # every symbol's signals, per timeframe (_load)
        self.trades: list[TradeRecord] = []
        self.extra_skips: Counter[str] = Counter()
        self.next_number = 1
        self.seq = 0
        # sizing at the smaller of the two smallest fractions passing means it passes at both
        # (a larger fraction never fails where a smaller one passed: see _refused_whatever_the_size)
        self._smallest_stats = min(_SMALLEST_SIZES, key=lambda st: kelly_fraction(st, self.sizing)[0])
        self._allowlist = frozenset(allow)
        # bumped whenever the wallet, the open brackets or what the gate counts (orders sent,
        # trades closed) change: the bound, and what _refused_within_bound learnt on it, last
        # as long as this and the wallet stay the same (an epoch)
        self._book_version = 0
        self._bound_key: tuple[int, Decimal] | None = None
        self._bound = Exposure(Decimal(0))
        self._bound_room = Decimal(0)
        self._full = False  # the gate answered max_positions on the bound in this epoch
        self._notional_floor = Decimal(0)  # at most the notional sizing wants on the bound in this epoch (0: unknown)
        self._fit_windows: dict[int, tuple[float, float]] = {}  # per symbol index, this epoch (_sure_fit_window)
        self._rejections: Counter[str] = Counter()  # refusals reused, not yet on the gate's prometheus counter
        self._last_entry_ms = -1  # when the last bracket was opened

    # ------------------------------------------------------------------ phases
    def run(self) -> None:
        self.sv.account_setup(list(self.s.session.symbols), self.s.croupier.margin_type)
        self._load()
        self._track()
        self._consensus()
        self._trade()

    def _load(self) -> None:
        names = list(self.s.session.symbols)
        for k, name in enumerate(names):
            m1 = self.venue.data[name].m1
            first = self.venue.data[name].bar_index(self.t0)
            want = self.t0 + M * np.arange(self.n_bars + 1, dtype=np.int64)
            if first is None or first + self.n_bars > len(m1) - 1 \
                    or not np.array_equal(m1.open_time[first:first + self.n_bars + 1], want):
                raise DataError(f"{name}: the fast replay needs gap-free 1m data over the replayed window "
                                f"({self.t0} … {self.last_open}); replay without --fast")
            cut = _head(m1, first + self.n_bars + 1)
            readings = symbol_readings(cut, self.plan, self.specs, first_close_ms=self.t0 + M,
                                       history_bars=self.s.sensors.window_bars + self.s.sensors.ring_slack_bars)
            self.symbols.append(_Symbol(name, k, first, readings, close=m1.close,
                                        allowlisted=name in self._allowlist))
            self.progress("signals", (k + 1) / len(names))
        self.tables = stack_tables([sym.readings for sym in self.symbols], self.n_bars)

    def _track(self) -> None:
        """Judge every vote; one ordered outcome sequence per sensor key.

        Each group of votes judged alike (timeframe, TP, SL) is judged at once; each key's
        resolved votes are kept as slices of the group's arrays and packed key by key at the end
        (``pack_events``), key ids being the consensus's voter rows."""
        n_sym = len(self.symbols)
        # a key's id is its voter row in the consensus (every symbol runs the same plan), so the
        # consensus reads the packed events as they are
        voter_keys = [sensor_key(ps.name, tf) for tf, rd in self.symbols[0].readings.items() for ps in rd.sensors
                      if not ps.context] if self.symbols else []
        row_of = {key: k for k, key in enumerate(voter_keys)}
        voted = np.zeros(len(voter_keys), dtype=bool)  # keys with a vote (judged or not) in some symbol
        # per key, its resolved votes as slices of each group's arrays: (symbol, resolving bar,
        # entry bar, r, won) — joined key by key when packed, never as one array of every vote
        parts: list[list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in voter_keys]
        size = self.n_bars + 2
        open_votes = np.zeros(size, dtype=np.int64)  # +1 at a vote's bar, -1 the bar after it resolves
        for sym in self.symbols:
            m1 = self.venue.data[sym.name].m1
            # the replayed bars only, indexed by global bar: votes are made from global bar 0 on
            # and judged on later bars, so the range tables (a copy of the series per level)
            # need nothing of the history before it
            window = slice(sym.first, sym.first + self.n_bars + 1)
            hi, lo, cl = m1.high[window], m1.low[window], m1.close[window]
            tables = RangeTables(hi, lo)  # shared by every group of this symbol
            for tf, rd in sym.readings.items():
                # votes are recorded on the 1m bar that closes a bar of ``tf`` (fresh): only
                # those bars are read, one per bar of the timeframe
                fresh_bars = np.flatnonzero(rd.fresh[:self.n_bars + 1])  # global bars
                table = self.tables[tf]
                # the fresh readings' columns in the timeframe's signal table (every symbol's
                # signals, voters first in plan order: stack_tables)
                columns = table.columns[fresh_bars, sym.index]
                voters = [ps for ps in rd.sensors if not ps.context]
                groups: dict[tuple[float, float], list[int]] = {}  # table rows of the sensors judged alike
                for row, ps in enumerate(voters):
                    if 0 < ps.tp_fraction < 1 and 0 < ps.sl_fraction < 1:
                        groups.setdefault((ps.tp_fraction, ps.sl_fraction), []).append(row)
                for (tp, sl), rows in groups.items():
                    ids = np.array([row_of[sensor_key(voters[k].name, tf)] for k in rows], dtype=np.int64)
                    # a chunk of fresh bars at a time: the group's arrays (every vote of every
                    # sensor, tens of millions at 1 symbol × 1 M bars) stay a few MB
                    step = max(1024, _VOTES_PER_CHUNK // len(rows))
                    # the group's rows as a slice when they are consecutive (every voter of the
                    # timeframe, with the default TP/SL): a column gather of a row slice is
                    # about twice as fast as the (rows × columns) fancy index
                    block = table.table[rows[0]:rows[-1] + 1] if rows[-1] - rows[0] == len(rows) - 1 else None
                    for c0 in range(0, len(columns), step):
                        chunk = columns[c0:c0 + step]
                        # (sensors, fresh bars), C-contiguous: _judge_chunk reads it flat (np.take
                        # along axis 1 gives that; block[:, chunk] would be laid out bar-major)
                        sig = table.table[np.ix_(rows, chunk)] if block is None else np.take(block, chunk, axis=1)
                        self._judge_chunk(sym, rd.timeframe, sig, ids, fresh_bars[c0:c0 + step], tp, sl,
                                          (hi, lo, cl), tables, parts, open_votes, voted)
        most = int(np.cumsum(open_votes).max())
        if most > self.tracker_params.max_open_votes:
            # the engine's tracker would drop its oldest open votes; which ones depends on the
            # order symbols feed it within a bar — not reproduced
            raise ConfigError(
                f"replay --fast: up to {most:,} tracker votes are open at once, more than tracker.max_open_votes "
                f"({self.tracker_params.max_open_votes:,}); the engine would drop the oldest, which the fast path "
                "does not reproduce — raise tracker.max_open_votes or replay without --fast",
                key="tracker.max_open_votes")
        # a vote resolves at the close of its bar (the data is gap-free over the window: _load)
        close_ms = self.t0 + M * np.arange(1, self.n_bars + 2, dtype=np.int64)

        def key_votes(key_parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
            if not key_parts:
                empty = np.zeros(0, dtype=np.int64)
                return empty, empty, empty, np.zeros(0), np.zeros(0, dtype=bool), empty
            bar = np.concatenate([q[1] for q in key_parts])
            symbol = np.repeat(np.array([q[0] for q in key_parts], dtype=np.int64), [len(q[1]) for q in key_parts])
            return (bar, symbol, np.concatenate([q[2] for q in key_parts]), np.concatenate([q[3] for q in key_parts]),
                    np.concatenate([q[4] for q in key_parts]), close_ms[bar])

        sizes = np.array([sum(len(q[1]) for q in key_parts) for key_parts in parts], dtype=np.int64)
        self.packed = pack_events(sizes, (key_votes(key_parts) for key_parts in parts), n_sym, self.tracker_params)
        self.events = {key: self.packed.row(k) for k, key in enumerate(voter_keys) if voted[k]}
        self.progress("tracker", 1.0)

    def _judge_chunk(self, sym: _Symbol, timeframe: Timeframe, sig: np.ndarray, ids: np.ndarray,
                     fresh_bars: np.ndarray, tp: float, sl: float,
                     prices: tuple[np.ndarray, np.ndarray, np.ndarray], tables: RangeTables,
                     parts: list[list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]],
                     open_votes: np.ndarray, voted: np.ndarray) -> None:
        """Judge the votes ``sig`` (sensors × fresh bars: key ids ``ids``, alike: timeframe, TP,
        SL) made on the fresh global bars ``fresh_bars`` (``prices``: the symbol's high, low,
        close over the replayed bars, indexed by global bar);
        each key's resolved votes go to ``parts``, every vote to the open-vote tally."""
        n = sig.shape[1]
        flat = sig.ravel()
        up = flat > 0  # NaN compares False: a missing reading is no vote
        votes = np.flatnonzero(up | (flat < 0))  # row-major: sensor by sensor, each in bar order
        if not votes.size:
            return
        voted[ids] = True
        col = votes % n  # the vote's fresh bar
        # one judgement per distinct (fresh bar, direction) = code, looked up by each vote: a
        # count over the chunk's codes instead of a sort (np.unique) of every sensor's votes
        code = col * 2
        code += up[votes]
        per_code = np.bincount(code, minlength=2 * n)
        uniq = np.flatnonzero(per_code)
        res, r, won = judge_votes(*prices, fresh_bars[uniq // 2], np.where(uniq % 2 == 1, 1, -1), tp, sl,
                                  self.tracker_params.horizon_bars * timeframe.ms // M, tables)
        ok = res != NOT_FOUND
        # the open-vote tally: +1 at a vote's bar, -1 the bar after it resolves (past the end: never)
        open_votes[fresh_bars] += np.bincount(col, minlength=n)
        # (counted over the span the chunk's resolutions reach, not the whole replay: a count
        # over every bar per chunk made this quadratic in the replay's length)
        ends = np.where(ok, res + 1, self.n_bars + 1)
        low = int(ends.min())
        open_votes[low:low + int(ends.max()) - low + 1] -= np.bincount(ends - low, weights=per_code[uniq]).astype(np.int64)
        # the resolved votes, still row-major: the first sensor's (ids[0]), then the second's …
        judged = (np.cumsum(per_code > 0) - 1)[code]
        if not ok.all():  # only votes within a horizon of the data's end stay unresolved
            resolved = ok[judged]
            votes, judged, col = votes[resolved], judged[resolved], col[resolved]
        by_key = np.searchsorted(votes, np.arange(len(ids) + 1) * n)
        g_bar, g_entry, g_r, g_won = res[judged], fresh_bars[col], r[judged], won[judged]
        for i, key_id in enumerate(ids.tolist()):
            a, b = by_key[i], by_key[i + 1]
            if b > a:
                parts[key_id].append((sym.index, g_bar[a:b], g_entry[a:b], g_r[a:b], g_won[a:b]))

    def _consensus(self) -> None:
        """Reason code of every bar of every symbol: blocks of ``_BLOCK`` columns, each a few
        bars of all symbols (``BlockScores``), so the per-call work is per block, not per
        (symbol, key, block)."""
        n_sym = len(self.symbols)
        readings = self.symbols[0].readings  # every symbol runs the same plan (stack_tables checks)
        voters = [(tf, ps) for tf, rd in readings.items() for ps in rd.sensors if not ps.context]
        n_context = sum(ps.context for rd in readings.values() for ps in rd.sensors)
        assert self.packed is not None and self.packed.rows == len(voters)
        scorer = BlockScores(self.packed, n_sym, self.n_bars, max(1, _BLOCK // n_sym), self.tracker_params, self.t0)
        codes = np.empty((self.n_bars + 1, n_sym), dtype=np.int8)  # by global bar 0 … G, symbol
        # voters with a reading, per column of each table: counted once here, gathered per block
        # (instead of a NaN test over every block's (voters × columns) signals)
        present = [np.count_nonzero(~np.isnan(table.table[:table.voters]), axis=0) for table in self.tables.values()]
        for b in range(scorer.n_blocks):
            g0, g1 = scorer.bars(b)
            width = (g1 - g0) * n_sym
            sig = np.empty((len(voters), width))
            ctx = np.empty((n_context, width))
            n_present = np.zeros(width, dtype=np.int64)
            v0 = c0 = 0
            for table, counts in zip(self.tables.values(), present, strict=True):  # the voters' timeframe order
                n_ctx = len(table.table) - table.voters
                table.gather(g0, g1, sig[v0:v0 + table.voters], ctx[c0:c0 + n_ctx])
                n_present += counts[table.columns[g0:g1].ravel()]
                v0 += table.voters
                c0 += n_ctx
            now = np.repeat(self.t0 + (np.arange(g0, g1, dtype=np.int64) + 1) * M, n_sym)
            scores, neutral = scorer.scores(b, now)
            block = classify(BarInputs(sig, scores, neutral, ctx, n_present), self.player,
                             lambda col, g0=g0: self._exact_reason(self.symbols[col % n_sym], g0 + col // n_sym))
            codes[g0:g1] = block.reshape(g1 - g0, n_sym)
            self.progress("consensus", g1 / (self.n_bars + 1))
        for sym in self.symbols:
            sym.codes = np.ascontiguousarray(codes[:, sym.index])

    # ------------------------------------------------------------------ exact pieces
    def _readings(self, sym: _Symbol, g: int) -> list[SensorReading]:
        out = []
        for tf, rd in sym.readings.items():
            j = int(rd.visible[g])  # (readings from global bar 0 on: _load)
            if j < 0:
                continue
            for ps in rd.sensors:
                out.append(SensorReading(ps.name, sym.name, tf, int(rd.open_time[j]), float(rd.signals[ps.name][j]),
                                         ps.tp_fraction, ps.sl_fraction, ps.context))
        return out

    def _bar(self, sym: _Symbol, g: int) -> Bar:
        close = self.sv.decimal_bar(sym.name, sym.first + g)[3]
        return Bar(sym.name, Timeframe.M1, self.t0 + g * M, close)

    def _tracker_at(self, sym: _Symbol, g: int, keys: list[str]) -> Any:
        return exact_tracker(self.events, g, sym.index, len(self.symbols), self.t0 + (g + 1) * M,
                             self.tracker_params, keys)

    def _decide(self, sym: _Symbol, g: int, book: SymbolBook) -> tuple[Any, Any]:
        """The real ``decide`` with the tracker's scores; the tracker (for sizing statistics)
        holds the qualifying voters that carry a signal.

        A voter's score only matters beyond whether it qualifies when it qualifies and carries
        a signal (its weight). So where the approximate score is farther than ``TOLERANCE``
        below ``min_score`` (the voter fails, signal or not), or above it for a voter without
        a signal (a zero-weight vote), that answer is exact and the approximation is passed;
        every other voter (a qualifying one with a signal, any near the threshold, an unseen
        key) is scored by a real ``SensorTracker`` — about half the keys fail at a time, and
        rebuilding the tracker is the cost of this call."""
        readings = self._readings(sym, g)
        now = self.t0 + (g + 1) * M
        scores: dict[str, float] = {}
        exact_keys: list[str] = []
        for r in readings:
            if r.context or r.is_missing:
                continue
            key = sensor_key(r.sensor, r.timeframe)
            ev = self.events.get(key)
            if ev is not None:
                m = int(ev.order.searchsorted(g * len(self.symbols) + sym.index, side="right"))
                approx = approx_score(ev, m, now, self.tracker_params)
                if approx < self.player.min_score - TOLERANCE or (
                        r.signal == 0 and approx > self.player.min_score + TOLERANCE):
                    scores[key] = approx
                    continue
            exact_keys.append(key)
        tracker = self._tracker_at(sym, g, exact_keys)
        scores.update(tracker.scores(exact_keys))
        verdict = decide(self._bar(sym, g), readings, scores, self.player, book, decided_ms=now)
        return verdict, tracker

    def _exact_reason(self, sym: _Symbol, g: int) -> str:
        verdict, _ = self._decide(sym, g, SymbolBook())
        return DECISION if isinstance(verdict, Decision) else verdict.reason

    # ------------------------------------------------------------------ trading
    def _push(self, t_ms: int, phase: int, symbol: int, kind: str, payload: Any) -> None:
        """Queue a decision, or an exit or funding (apart: ``_sweep`` reads when the next one is)."""
        self.seq += 1
        heapq.heappush(self._queue if kind == "decide" else self._events, (t_ms, phase, symbol, self.seq, kind, payload))

    def _trade(self) -> None:
        # two heaps of (time, phase, symbol, seq, …), taken from in that one order
        self._queue: list[tuple[int, int, int, int, str, Any]] = []  # decisions
        self._events: list[tuple[int, int, int, int, str, Any]] = []  # exits and fundings
        n_decisions = 1
        # per symbol, its deciding bars as a list: bisect on a list costs a fraction of a numpy
        # searchsorted call, and there is one per decision
        self._candidates: list[list[int]] = []
        for sym in self.symbols:
            assert sym.codes is not None
            sym.candidates = np.flatnonzero(sym.codes == CODE[DECISION])
            self._candidates.append(sym.candidates.tolist())
            n_decisions += len(sym.candidates)
            self._next_candidate(sym, 0)
        for ft in funding_times_between(self.venue.start_ms - 1, self.venue.end_ms):
            self._push(ft, _PHASE_FUNDING, -1, "funding", ft)
        handled = 0
        queue, events = self._queue, self._events
        while queue or events:
            heap = events if events and (not queue or events[0] < queue[0]) else queue
            t_ms, _phase, _k, _seq, kind, payload = heapq.heappop(heap)
            if kind == "decide":
                sym = self.symbols[_k]
                self._on_decision(sym, payload, t_ms)
                g = self._sweep(sym, payload)
                handled = max(handled, bisect.bisect_left(self._candidates[_k], g))
                self._next_candidate(sym, self._next_possible(sym, g))
                self.progress("trades", handled / n_decisions)
            elif kind == "exit":
                self._on_exit(self.symbols[_k], payload)
            else:
                self._on_funding(payload)
        self._flush_refusals()
        self._shutdown()
        self.progress("trades", 1.0)

    def _sweep(self, sym: _Symbol, g: int) -> int:
        """Decide ``sym``'s next deciding bars now, up to the next exit or funding, while each is
        certain to be refused at the position limit; the last bar decided (``g`` if none).

        While the gate's max_positions answer holds (``_refused_within_bound``: this epoch, an
        allowlisted symbol) no decision of any symbol can open a bracket or send an order — the
        occupied symbols are at the limit, on the real exposure as on the bound — so the epoch
        lasts until the next exit or funding. Until then each of ``sym``'s deciding bars past its
        cooldown whose close sizing surely fits (``_surely_fits``) is refused with
        max_positions whenever it is taken; taking it before other symbols' decisions of the
        same span changes nothing they read (counts add up; the clock is set by whatever reads
        it next). The first bar that is not certain goes back to the queue."""
        if not (self._full and sym.allowlisted and self._bound_key == (self._book_version, self.sv.wallet())):
            return g
        until = self._events[0][0] if self._events else self.venue.end_ms + 1  # events come first at equal times
        candidates = self._candidates[sym.index]
        step = self.player.cooldown_bars + 1
        taken = 0
        while sym.decisions and sym.decisions[-1] == g:
            k = bisect.bisect_left(candidates, g + step)
            if k == len(candidates):
                break
            nxt = candidates[k]
            if self._decision_time(nxt) >= until or not self._surely_fits(sym, nxt):
                break
            sym.last_decision_index = (self.t0 + nxt * M) // M
            sym.decisions.append(nxt)
            taken += 1
            g = nxt
        if taken:
            self._count_refusal(_MAX_POSITIONS, taken)
        return g

    def _next_candidate(self, sym: _Symbol, from_g: int | None) -> None:
        """Queue the symbol's first deciding bar at or after ``from_g`` (None: no more)."""
        if from_g is None:
            return
        candidates = self._candidates[sym.index]
        k = bisect.bisect_left(candidates, from_g)
        if k < len(candidates):
            g = candidates[k]
            self._push(self._decision_time(g), _PHASE_DECIDE, sym.index, "decide", g)

    def _next_possible(self, sym: _Symbol, g: int) -> int | None:
        """The first bar after ``g`` at which the player's debounce could let ``sym`` decide:
        past the cooldown of its last decision and, with a bracket open, from the bar its exit
        is known (None: the bracket outlives the data). Bars skipped here are counted by the
        masks in ``skip_counts``; they can never reach an entry."""
        nxt = g + 1
        if sym.decisions and sym.decisions[-1] == g:
            nxt = g + self.player.cooldown_bars + 1
        b = sym.bracket
        if b is not None:
            if b.exit_bar == NOT_FOUND:
                return None
            g_exit = b.exit_bar - sym.first
            nxt = max(nxt, g_exit - 1 if b.exit_point == 0 else g_exit)
        return nxt

    def _decision_time(self, g: int) -> int:
        """When the engine decides bar ``g``: at the next bar's first point (the data's end for the last)."""
        return self.venue.end_ms if g == self.n_bars else self.t0 + (g + 1) * M

    def _on_decision(self, sym: _Symbol, g: int, t_ms: int) -> None:
        book = SymbolBook(sym.last_decision_index, sym.bracket is not None)
        # the player's debounce, which comes first in decide(), answers bracket_open / cooldown
        # before anything is built for this bar
        if debounce(Bar(sym.name, Timeframe.M1, self.t0 + g * M, Decimal(0)), self.player, book) is not None:
            return  # counted with the masks (skip_counts)
        # past the debounce this bar decides (the consensus classified it with certainty)
        sym.last_decision_index = (self.t0 + g * M) // M
        sym.decisions.append(g)
        self.clock.set_ms(t_ms)
        if self._refused_within_bound(sym, g, t_ms):
            return
        exposure = self._exposure(sym, g)
        if self._no_room_whatever_the_decision(sym, g, exposure):
            return
        # below the position limit the gate mostly allows, and _act reaches the same refusal
        # (its own sizing and gate check) when it does not: the early answer would be wasted
        if len(exposure.brackets) >= self.s.risk.max_positions and self._refused_whatever_the_size(sym, g, exposure):
            return
        verdict, tracker = self._decide(sym, g, book)
        if not isinstance(verdict, Decision):
            raise RuntimeError(f"fast replay: {sym.name} bar {g} classified as deciding, decide() says {verdict}")
        self._act(sym, g, verdict, tracker, t_ms, exposure)

    def _no_room_whatever_the_decision(self, sym: _Symbol, g: int, exposure: Exposure) -> bool:
        """True (skip counted) when sizing refuses this entry before it reads anything of the
        decision: the symbol is not trading, there is no equity, or the gate's limits leave no
        headroom (gross exposure or leverage used up below the position limit).

        ``size_entry`` makes those checks first; the ones between them read the decision's
        reference price (the bar's close, > 0) and stop distance (within [sl_min, sl_max], valid
        settings), which pass for every decision. So sizing with any valid stop distance gives
        the same refusal, and the exact scores and statistics are not built: a 50-symbol replay
        whose open positions use up the gross limit decides thousands of bars into that refusal."""
        room = self.risk.entry_headroom(sym.name, exposure)
        if room > 0 and exposure.equity > 0 and self.venue.specs[sym.name].rules.status == "TRADING":
            return False
        size = self._smallest_size(sym, g, exposure.equity, room)
        if not isinstance(size, SizeSkip) or size.reason not in _DECISION_FREE_SIZE_SKIPS:
            return False
        self.extra_skips[f"size_{size.reason}"] += 1
        return True

    def _refused_whatever_the_size(self, sym: _Symbol, g: int, exposure: Exposure) -> bool:
        """True (skip counted) when the risk gate refuses this entry for a reason no size changes
        (halted, cooldown, max positions …) and sizing cannot fail first: then the decision's
        details (exact scores, sizing statistics) cannot change the outcome and are not built.

        Sizing is asked with the smallest fraction any tracker statistics can give (fallback
        or min_fraction); a larger fraction never makes sizing fail where a smaller one passed
        (quantities are capped, never refused, above). fixed_risk sizes from the decision's stop
        distance, so it always takes the full path.
        """
        if self.sizing.mode is SizingMode.FIXED_RISK:
            return False
        if not self._smallest_size_fits(sym, g, exposure.equity, self.risk.entry_headroom(sym.name, exposure)):
            return False
        self._feed_candle(sym, g)
        verdict = self.risk.check_entry(EntryIntent(sym.name, Side.BUY, Decimal(0)), exposure)
        if verdict.allowed:
            return False
        self.extra_skips[f"risk_{verdict.reason}"] += 1
        return True

    def _smallest_size(self, sym: _Symbol, g: int, equity: Decimal, room: Decimal) -> Size | SizeSkip:
        """Sizing of the smallest entry any tracker statistics can ask for on ``sym`` at bar
        ``g``'s close, given the equity and the gate's headroom on ``sym``."""
        close = self.sv.decimal_bar(sym.name, sym.first + g)[3]
        return size_entry(price=close, sl_fraction=self.player.sl_min_fraction, equity=equity,
                          rules=self.venue.specs[sym.name].rules, stats=self._smallest_stats, params=self.sizing,
                          market=True, max_notional=room)

    def _smallest_size_fits(self, sym: _Symbol, g: int, equity: Decimal, room: Decimal) -> bool:
        return not isinstance(self._smallest_size(sym, g, equity, room), SizeSkip)

    def _refused_within_bound(self, sym: _Symbol, g: int, t_ms: int) -> bool:
        """``_refused_whatever_the_size`` answered without the marks, where that is exact.

        The marks only move the exposure's equity and notionals; ``_exposure_bound`` gives an
        equity below and notionals above the real ones. Sizing's notional grows with equity and
        headroom and the headroom shrinks with gross exposure, so sizing that passes on the
        bound passes on the real exposure; then the gate's headroom is positive, so with a zero
        notional it can only refuse for a reason decided before it reads equity or notionals
        (the same bracket symbols are occupied), which the real exposure gets as well. Anything
        else — sizing failing on the bound, the gate allowing — is settled on the real marks, and
        so is a decision at the time a bracket opened: that bracket is marked at a price its legs
        were never checked against (the close before its entry; on the data's last bar, a bar
        ``find_exit`` does not scan).

        Within an epoch (``_exposure_bound``) two answers are reused rather than asked again:

        - sizing: the bound's equity and headroom, hence the notional sizing wants, are the
          same for every deciding symbol; a notional it granted once is a floor under it, and
          ``_sure_fit_window`` turns that floor into the closes at which sizing surely passes on
          each symbol. Outside that window sizing is asked exactly.
        - the gate: once it has answered max_positions on the bound (the position limit is
          reached: the bound's brackets are the occupied symbols), it answers max_positions to
          every later allowlisted deciding symbol of the epoch. Its earlier checks cannot turn
          into a refusal with time alone: the trading state and the order and loss counts
          change only with the gate's feeds — trades closed and orders sent, each of which
          starts an epoch; the fast replay feeds nothing else — a loss cooldown only ends and
          orders only age out of the last minute; the allowlist is per symbol; stale_data
          cannot refuse a symbol whose candle is fed before each of its checks (decisions come
          in time order, so a candle not fed for a decision answered here is older than the
          next one fed); no_equity cannot, the bound's equity being positive when sizing passed.
        """
        if self.sizing.mode is SizingMode.FIXED_RISK or self._last_entry_ms == t_ms:
            return False
        bound, room = self._exposure_bound(sym)
        if len(bound.brackets) < self.s.risk.max_positions:
            return False  # below the position limit the gate mostly allows: asking it here would be wasted
        if not self._surely_fits(sym, g):
            size = self._smallest_size(sym, g, bound.equity, room)
            if isinstance(size, SizeSkip):
                return False
            if size.notional > self._notional_floor:
                self._notional_floor = size.notional
                self._fit_windows.clear()
        if self._full and sym.allowlisted:
            self._count_refusal(_MAX_POSITIONS)
            return True
        self._feed_candle(sym, g)
        verdict = self.risk.check_entry(EntryIntent(sym.name, Side.BUY, Decimal(0)), bound)
        if verdict.allowed:
            return False
        if verdict.reason not in _EXPOSURE_FREE_REFUSALS:
            raise RuntimeError(f"fast replay: {sym.name} bar {g}: the risk gate refused {verdict.reason} on the "
                               "exposure bound, where sizing left headroom")
        self._full = verdict.reason == _MAX_POSITIONS
        self.extra_skips[f"risk_{verdict.reason}"] += 1
        return True

    def _surely_fits(self, sym: _Symbol, g: int) -> bool:
        """Whether sizing on the bound surely passes at bar ``g``'s close (``_sure_fit_window``)."""
        if not self._notional_floor:
            return False
        window = self._fit_windows.get(sym.index)
        if window is None:
            window = self._fit_windows[sym.index] = _sure_fit_window(self.venue.specs[sym.name].rules,
                                                                   self._notional_floor)
        return window[0] <= sym.close[sym.first + g] <= window[1]

    def _count_refusal(self, reason: str, n: int = 1) -> None:
        """``n`` gate refusals reused within an epoch, counted everywhere ``check_entry`` counts
        one (its prometheus counter at the end of the trade phase: ``_flush_refusals``)."""
        self.risk.rejection_counts[reason] += n
        self._rejections[reason] += n
        self.extra_skips[f"risk_{reason}"] += n

    def _flush_refusals(self) -> None:
        for reason, n in self._rejections.items():
            RISK_REJECTIONS.labels(reason=reason).inc(n)
        self._rejections.clear()

    def _exposure_bound(self, deciding: _Symbol) -> tuple[Exposure, Decimal]:
        """An exposure whose equity is at most, and whose notionals are at least, the real
        exposure's at any decision while the wallet and the open brackets stay as they are
        (and no bracket opened at the decision's time: ``_refused_within_bound``), and the
        gate's headroom on it for ``deciding`` — the same for every symbol without a bracket,
        which a deciding symbol is (the player's debounce). A new epoch starts here.

        Every mark of an open bracket (``_marks``) is a path point of the decided bar, at or
        after the bracket's entry bar and before its exit, i.e. a point at which ``find_exit``
        found neither leg firing: strictly between the stop and the take-profit. So each
        bracket's unrealized PnL is above its value at the stop, its notional below quantity ×
        the farther leg."""
        key = (self._book_version, self.sv.wallet())
        if key != self._bound_key:
            held = [s for s in self.symbols if s.bracket is not None]
            self._bound_key = key
            self._bound = self._exposure_at({s.name: s.bracket.sl_price for s in held},  # type: ignore[union-attr]
                                            {s.name: max(s.bracket.sl_price, s.bracket.tp_price)  # type: ignore[union-attr]
                                             for s in held})
            self._bound_room = self.risk.entry_headroom(deciding.name, self._bound)
            self._full = False
            self._notional_floor = Decimal(0)
            self._fit_windows.clear()
        return self._bound, self._bound_room

    def _feed_candle(self, sym: _Symbol, g: int) -> None:
        o, h, low, c, v = self.sv.decimal_bar(sym.name, sym.first + g)
        self.risk.on_candle(Candle(sym.name, Timeframe.M1, self.t0 + g * M, o, h, low, c, v))

    def _marks(self, deciding: _Symbol, g: int) -> dict[str, Decimal]:
        """The croupier's marks when ``deciding`` decides bar ``g``: symbols before it in the
        stream have delivered bar ``g``'s close, the ones after it its third point."""
        marks = {}
        for sym in self.symbols:
            b = sym.bracket
            if b is None:
                continue
            i = sym.first + g
            if sym.index < deciding.index:
                marks[sym.name] = self.sv.decimal_bar(sym.name, i)[3]
            else:
                adverse = None if b.entry_bar == i else b.side
                marks[sym.name] = self.sv.path(sym.name, i, adverse)[-2].price
        return marks

    def _exposure(self, deciding: _Symbol, g: int) -> Exposure:
        marks = self._marks(deciding, g)
        return self._exposure_at(marks, marks)

    def _exposure_at(self, valued: Mapping[str, Decimal], sized: Mapping[str, Decimal]) -> Exposure:
        """The wallet plus every open bracket's unrealized PnL at ``valued[symbol]``, each
        bracket's notional at ``sized[symbol]``; exact (60 digits)."""
        with localcontext() as ctx:
            ctx.prec = 60
            equity = self.sv.wallet()
            notional: dict[str, Decimal] = {}
            for sym in self.symbols:
                b = sym.bracket
                if b is None:
                    continue
                qty = b.quantity if b.side is Side.BUY else -b.quantity
                equity += qty * valued[sym.name] - qty * b.entry_price
                notional[sym.name] = b.quantity * sized[sym.name]
        brackets = frozenset(s.name for s in self.symbols if s.bracket is not None)
        return Exposure(equity, notional, brackets)

    def _act(self, sym: _Symbol, g: int, decision: Decision, tracker: Any, t_ms: int, exposure: Exposure) -> None:
        rules = self.venue.specs[sym.name].rules
        room = self.risk.entry_headroom(sym.name, exposure)
        size = size_entry(price=decision.reference_price, sl_fraction=decision.sl_fraction, equity=exposure.equity,
                          rules=rules, stats=tracker.performance(winning_keys(decision)), params=self.sizing,
                          market=True, max_notional=room)
        if isinstance(size, SizeSkip):
            self.extra_skips[f"size_{size.reason}"] += 1
            return
        self._feed_candle(sym, g)
        verdict = self.risk.check_entry(EntryIntent(sym.name, decision.side, size.notional), exposure)
        if not verdict.allowed:
            self.extra_skips[f"risk_{verdict.reason}"] += 1
            return
        self.risk.on_order_sent()
        self._book_version += 1  # the gate's order count changed: a new epoch (_refused_within_bound)
        qty = rules.round_qty(size.quantity, market=True)
        if rules.check(quantity=qty, price=None, reference_price=decision.reference_price, market=True,
                       side=decision.side):
            self.extra_skips["entry_rejected"] += 1
            return
        number = self.next_number
        self.next_number += 1
        entry_bar = sym.first + g + (1 if g < self.n_bars else 0)
        self._prices_at(g, t_ms, sym)
        self._book_version += 1
        try:
            price, notional, fee = self.sv.enter(sym.name, decision.side, qty, t_ms,
                                                 client_id(self.tag, sym.name, number, Leg.ENTRY))
        except SimError:
            self.extra_skips["entry_rejected"] += 1
            return
        try:
            sl, tp, sl_algo, tp_algo = self.sv.protect(
                sym.name, decision.side, price, decision.tp_fraction, decision.sl_fraction, t_ms,
                client_id(self.tag, sym.name, number, Leg.STOP_LOSS),
                client_id(self.tag, sym.name, number, Leg.TAKE_PROFIT))
        except SimError as exc:
            raise ConfigError(
                f"replay --fast: the venue refused a protective leg of {sym.name} at {t_ms} ({exc.code}: {exc.msg}); "
                "the croupier's retries and protective flatten are not reproduced — replay without --fast",
                key="croupier.protect_attempts") from None
        b = OpenBracket(number, sym.name, decision.side, qty, entry_bar, t_ms, price, notional, fee, sl, tp, sl_algo,
                        tp_algo, decision.confidence, tuple((v.sensor, v.weight) for v in decision.votes),
                        funding_start=self.sv.funding_so_far(sym.name))
        sym.bracket = b
        self._last_entry_ms = t_ms
        sym.active.append((g + 1, self.n_bars))  # closed by _on_exit
        if g < self.n_bars:
            self.sv.find_exit(b, sym.first + self.n_bars)
        if b.exit_bar != NOT_FOUND:
            self._push(b.exit_path[b.exit_point].time_ms, _PHASE_EXIT, sym.index, "exit", b)

    def _prices_at(self, g: int, t_ms: int, deciding: _Symbol) -> None:
        """The venue's price when bar ``g`` is decided: the next bar's first point, or the last
        close when ``g`` is the data's last bar (nothing plays after it) — for the deciding
        symbol and every symbol with an open bracket. A flat symbol with nothing resting
        (brackets are the only orders) carries no margin, triggers nothing, and gets its price
        set again before anything is placed on it, so its price is not fed in between."""
        for sym in self.symbols:
            if sym is not deciding and sym.bracket is None:
                continue
            if g < self.n_bars:
                price = self.sv.decimal_bar(sym.name, sym.first + g + 1)[0]
            else:
                price = self.sv.decimal_bar(sym.name, sym.first + g)[3]
            self.sv.set_price(sym.name, price, t_ms)

    def _on_exit(self, sym: _Symbol, b: OpenBracket) -> None:
        fill = self.sv.play_exit(b)
        m1 = self.venue.data[sym.name].m1
        bar_open = int(m1.open_time[b.exit_bar])
        point_ms = b.exit_path[b.exit_point].time_ms
        step_end = point_ms if b.exit_point == 0 else min(bar_open + M, self.venue.end_ms)
        self.clock.set_ms(step_end)
        # the trade's exit time is the exit fill's own time (the path point), as the venue reports it
        self._close(sym, b, fill.price, fill.quantity, b.entry_fee + fill.fees, fill.reason, point_ms, point_ms)
        g_exit = b.exit_bar - sym.first
        free_from = g_exit - 1 if b.exit_point == 0 else g_exit  # first bar decided without the bracket
        start, _ = sym.active[-1]
        sym.active[-1] = (start, free_from - 1)

    def _close(self, sym: _Symbol, b: OpenBracket, exit_price: Decimal, exit_qty: Decimal, fees: Decimal,
               reason: str, exit_ms: int, booked_until_ms: int) -> None:
        gross = (exit_price - b.entry_price) * exit_qty * b.side.sign
        funding = self.sv.funding_so_far(sym.name) - b.funding_start
        record = TradeRecord(bracket_id(self.tag, sym.name, b.number), sym.name, b.side, b.quantity, b.entry_ms,
                             b.entry_price, exit_ms, exit_price, reason, gross, fees, funding, b.confidence, b.votes)
        self.trades.append(record)
        self.risk.on_trade_closed(record.net_pnl)
        sym.bracket = None
        self._book_version += 1

    def _on_funding(self, t_ms: int) -> None:
        open_syms = [s.name for s in self.symbols if s.bracket is not None]
        if not open_syms:
            return  # every position is flat: a settlement moves nothing (positions open only in brackets)
        prev = {}
        for s in self.symbols:
            if s.bracket is not None:
                i = s.first + (t_ms - M - self.t0) // M
                prev[s.name] = (self.sv.decimal_bar(s.name, i)[3], t_ms - 1)
        self._book_version += 1
        self.sv.funding(t_ms, open_syms, prev)

    def _shutdown(self) -> None:
        """Data end: the flatten exit policy closes what is still open at the last close."""
        end = self.venue.end_ms
        self.clock.set_ms(end)
        for sym in sorted((s for s in self.symbols if s.bracket is not None), key=lambda s: s.bracket.number):
            b = sym.bracket
            assert b is not None
            close = self.sv.decimal_bar(sym.name, sym.first + self.n_bars)[3]
            fill = self.sv.flatten(b, close, end, client_id(self.tag, sym.name, b.number, Leg.FLATTEN))
            self._close(sym, b, fill.price, fill.quantity, b.entry_fee + fill.fees, fill.reason, end, end)

    # ------------------------------------------------------------------ results
    def record(self, config_hash: str) -> SessionRecord:
        """The session record for core/report.py (``core.fast_results``)."""
        from core.fast_results import build_record

        return build_record(self, config_hash)


def _sure_fit_window(rules: SymbolRules, floor: Decimal) -> tuple[float, float]:
    """Float closes ``[low, high]`` at which ``size_entry`` (MARKET, on ``rules``) surely passes
    when the notional N it wants — min(wanted, cap), the same at every price in the modes the
    bound serves — is at least ``floor`` and its inputs other than the price passed once.

    At the Decimal price p, with s the market step and S the step: the quantity q is N/p
    floored to s, or the exchange maximum floored to s when that is smaller, so
    q ≥ floor/p − s when that maximum is at least floor/p (the low end). With
    floor/p ≥ min_qty + s + S and floor − (s + S)·p ≥ min_notional (the high end) q exceeds
    the quantity both minimums need (each rounded up to S), and q·p ≥ min_notional; q is a
    multiple of s within the maximum by construction. The venue's Decimal close is within half
    a tick of the float close; everything else is left a ``_FIT_MARGIN``. Empty (low > high)
    when nothing is sure."""
    if rules.status != "TRADING":
        return 1.0, 0.0
    step_d = rules.market_step_size or rules.step_size
    step, lot, tick = float(step_d), float(rules.step_size), float(rules.tick_size)
    min_qty = float(rules.min_qty if rules.market_min_qty is None else max(rules.min_qty, rules.market_min_qty))
    n = float(floor) * (1 - _FIT_MARGIN)
    high = min(n / (min_qty + step + lot), (n - float(rules.min_notional)) / (step + lot)) * (1 - _FIT_MARGIN) - tick
    low = 2 * tick
    max_qty = rules.market_max_qty or rules.max_qty
    if max_qty > 0:
        most = float((max_qty / step_d).to_integral_value(rounding=ROUND_FLOOR) * step_d)
        if most <= 0:
            return 1.0, 0.0
        low = max(low, n / most * (1 + _FIT_MARGIN) + tick)
    return low, high


def _head(series: Any, n: int) -> Any:
    """The first ``n`` bars of a candle series (the replay never reads past its last bar)."""
    from dataclasses import replace

    return replace(series, open_time=series.open_time[:n], open=series.open[:n], high=series.high[:n],
                   low=series.low[:n], close=series.close[:n], volume=series.volume[:n])


def run_fast_replay(settings: Settings, session_id: str, session_dir: Path, *, duration_s: float | None,
                    progress: bool) -> tuple[SessionRecord, FastReplay]:
    """Refuse what is not reproduced, run, and return the session record (report not yet written)."""
    import hashlib

    refuse_unsupported(settings, duration_s)
    fast = FastReplay(settings, session_id)
    if progress:
        from core.fast_results import progress_printer

        fast.progress = progress_printer((fast.n_bars + 1) * len(settings.session.symbols))
    fast.run()
    if progress:
        sys.stderr.write("\n")
    config_hash = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    return fast.record(config_hash), fast


def refuse_unsupported(settings: Settings, duration_s: float | None) -> None:
    """ConfigError (exit 2) naming the first option the fast path does not reproduce."""
    problems = unsupported(settings, duration_s)
    if problems:
        key, why = problems[0]
        raise ConfigError(f"replay --fast cannot reproduce {key} = {_current(settings, key)!r}: {why}; "
                          "replay without --fast", key=key)


def _current(settings: Settings, key: str) -> Any:
    if key.startswith("--"):
        return "given"
    obj: Any = settings
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj
