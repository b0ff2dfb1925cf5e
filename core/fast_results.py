"""What a fast replay reports: skip counts, per-minute equity, the daily-loss guard, the record.

Split from ``core/fast_replay.py`` (which computes the replay) so each module keeps one job;
the record is the same ``core.report.SessionRecord`` the engine fills, written by the same
``core.report.write_report``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ConfigError
from core.fast_consensus import DECISION, REASONS
from core.player import SKIP_BRACKET_OPEN, SKIP_COOLDOWN
from core.progress import draw, progress_line
from core.report import MAX_SERIES_POINTS, SessionRecord
from exchanges.sim.feed import MINUTE_MS

if TYPE_CHECKING:
    from core.fast_replay import FastReplay

M = MINUTE_MS


def skip_counts(self: FastReplay) -> dict[str, int]:
    """Every skip the engine would count: the player's per bar, then sizing/risk/venue refusals."""
    out: Counter[str] = Counter()
    cooldown = self.player.cooldown_bars
    bracket_code, cooldown_code = len(REASONS), len(REASONS) + 1
    names = (*REASONS, SKIP_BRACKET_OPEN, SKIP_COOLDOWN)
    for sym in self.symbols:
        assert sym.codes is not None
        codes = sym.codes.astype(np.int64)  # by global bar 0 … G
        for d in sym.decisions:
            codes[d + 1:min(d + cooldown, self.n_bars) + 1] = cooldown_code
        for a, z in sym.active:
            if z >= a:
                codes[a:z + 1] = bracket_code
        counts = np.bincount(codes, minlength=len(names))
        out.update({names[k]: int(c) for k, c in enumerate(counts) if c and names[k] != DECISION})
    out.update(self.extra_skips)
    return dict(out)

def daily_loss_guard(self: FastReplay, times: np.ndarray, equity: np.ndarray) -> None:
    """The fast path does not model the daily-loss halt: refuse a run that came near it.

    Per loss period (the session, or each UTC day), the worst equity against the period's
    starting equity must stay clear of the limit by 10 % of it; the engine samples equity
    at its marks once a minute, these per-minute closes are near enough for that margin.
    """
    p = self.s.risk
    if not equity.size:
        return
    if p.daily_reset == "utc_midnight":
        day = times // 86_400_000
        starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    else:
        starts = np.array([0])
    ends = np.r_[starts[1:], len(equity)]
    for a, z in zip(starts, ends, strict=True):
        base = float(self.start_balance) if a == 0 else float(equity[a - 1])
        limit = base * p.daily_loss_limit_fraction
        worst = float(equity[a:z].min()) - base
        if worst <= -0.9 * limit:
            raise ConfigError(
                f"replay --fast: equity fell {-worst:.2f} USDT in a loss period, within 10 % of the daily loss "
                f"limit ({limit:.2f}); the fast path does not reproduce the HALTED state — replay without --fast "
                "(or raise risk.daily_loss_limit_fraction)", key="risk.daily_loss_limit_fraction")

def equity_per_minute(self: FastReplay) -> tuple[np.ndarray, np.ndarray]:
    """(close times, equity) per 1m bar for the report: the wallet after each closed trade
    plus open positions marked at each bar's close (the engine samples its marks once a minute)."""
    n = self.n_bars + 1
    times = self.t0 + (np.arange(n) + 1) * M
    steps = np.zeros(n + 1)
    equity = np.full(n, float(self.start_balance))
    index = {s.name: s for s in self.symbols}
    for t in self.trades:
        sym = index[t.symbol]
        m1 = self.venue.data[t.symbol].m1
        g_in = (t.entry_time_ms - self.t0) // M  # the bar whose open filled the entry
        g_out = min(-((self.t0 - t.exit_time_ms) // M), n)  # first bar starting at or after the exit fill
        steps[g_out] += float(t.net_pnl)
        if g_out > g_in:
            closes = m1.close[sym.first + g_in:sym.first + g_out]
            equity[g_in:g_out] += float(t.side.sign) * float(t.quantity) * (closes - float(t.entry_price))
    return times, equity + np.cumsum(steps)[:n]

def build_record(self: FastReplay, config_hash: str) -> SessionRecord:
    rec = SessionRecord(self.session_id, "replay", config_hash, list(self.s.session.symbols),
                        self.venue.start_ms - 1, self.start_balance, on_exit=self.s.session.on_exit)
    rec.ended_ms = self.venue.end_ms
    rec.exit_reason = "data_end"
    rec.trades = list(self.trades)
    rec.final_balance = self.sv.wallet()
    ledger = self.sv.engine.account.ledger
    rec.fees_total = -sum((e.amount for e in ledger if e.income_type == "COMMISSION"), Decimal(0))
    rec.funding_total = sum((e.amount for e in ledger if e.income_type == "FUNDING_FEE"), Decimal(0))
    times, equity = equity_per_minute(self)
    step = max(1, len(times) // MAX_SERIES_POINTS)
    rec.equity = [(int(t), float(e)) for t, e in zip(times[::step], equity[::step], strict=True)]
    for sym in self.symbols:
        m1 = self.venue.data[sym.name].m1
        idx = np.arange(sym.first, sym.first + self.n_bars + 1, step)
        rec.prices[sym.name] = list(zip((m1.open_time[idx] + M).tolist(), m1.close[idx].tolist(), strict=True))
    rec.skip_reasons = skip_counts(self)
    rec.notes.append("fast replay (vectorised path: core/fast_replay.py); same rules, parity-tested "
                     "against the event-driven replay")
    daily_loss_guard(self, times, equity)
    return rec


def progress_printer(total_bars: int) -> Callable[[str, float], None]:
    """A one-line progress bar on stderr: phase, bars done, bars/s, ETA (bars = symbol-bars)."""
    started = time.monotonic()
    last = [0.0]
    weights = {"signals": (0.0, 0.3), "tracker": (0.3, 0.1), "consensus": (0.4, 0.4), "trades": (0.8, 0.2)}

    def show(phase: str, fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and fraction < 1.0:
            return
        last[0] = now
        base, share = weights.get(phase, (0.0, 1.0))
        overall = min(1.0, base + share * fraction)
        draw(progress_line(int(total_bars * overall), total_bars, now - started, phase))

    return show
