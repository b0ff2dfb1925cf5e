"""The risk gate: may this order leave? ``TradingState`` ACTIVE / REDUCING / HALTED plus checks.

State is *derived* from the conditions currently active, each of which forces a minimum state
(``CONDITION_STATE``); the gate's state is the most restrictive of them:

    condition         state      clears when
    daily_loss        HALTED     the loss period resets (UTC midnight), or never in "session" mode
    manual_halt       HALTED     ``resume()``
    breaker_open      REDUCING   every endpoint group's breaker closed again
    rate_limit_ban    REDUCING   the ban's ``until_ms`` has passed on the clock

What each state lets through is the table ``ALLOWED``: only ACTIVE allows entries; exits,
protective orders and cancels always pass (a gate must never stop Casino from reducing risk).

Entry checks, in order, each with a stable rejection key (``casino_risk_rejections_total``):
``halted`` / ``reducing`` · ``not_allowlisted`` · ``outside_universe`` · ``stale_data`` (no closed
candle on the symbol for more than ``stale_after_intervals`` intervals) · ``loss_cooldown``
(``max_consecutive_losses`` losing trades in a row → no entries for ``loss_cooldown_s``; counted
across the account because it is a strategy-level brake) · ``order_rate`` (``max_orders_per_minute``
orders already sent in the last 60 s) · ``bracket_open`` (one bracket or position per symbol) ·
``max_positions`` · ``max_notional_symbol`` · ``max_gross_exposure`` · ``max_gross_leverage``
(gross notional / equity: exposure is counted at full notional, leverage never hides it) ·
``no_equity``.

Daily loss = realized (net of fees and funding, as fed) + unrealized PnL since the period start,
against ``daily_loss_limit_fraction`` × the equity at the period start. Time comes only from the
injected ``Clock``.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from config.settings import RiskSettings
from core.metrics import RISK_REJECTIONS, TRADING_STATE
from core.ports import Clock
from core.types import ZERO, Candle, Side, Timeframe, TradingState

log = logging.getLogger(__name__)

STATE_VERSION = 1
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000


class Condition(str, Enum):
    """A reason for the gate to leave ACTIVE (see ``CONDITION_STATE``)."""

    DAILY_LOSS = "daily_loss"
    MANUAL_HALT = "manual_halt"
    BREAKER_OPEN = "breaker_open"
    RATE_LIMIT_BAN = "rate_limit_ban"


class OrderKind(str, Enum):
    """What an order does to risk; ``ALLOWED`` says which kinds each state lets through."""

    ENTRY = "entry"  # opens or adds to a position
    EXIT = "exit"  # reduce-only / closing
    PROTECT = "protect"  # stop-loss / take-profit legs
    CANCEL = "cancel"


CONDITION_STATE: dict[Condition, TradingState] = {
    Condition.DAILY_LOSS: TradingState.HALTED,
    Condition.MANUAL_HALT: TradingState.HALTED,
    Condition.BREAKER_OPEN: TradingState.REDUCING,
    Condition.RATE_LIMIT_BAN: TradingState.REDUCING,
}
STATE_LEVEL: dict[TradingState, int] = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
ALLOWED: dict[TradingState, frozenset[OrderKind]] = {
    TradingState.ACTIVE: frozenset(OrderKind),
    TradingState.REDUCING: frozenset({OrderKind.EXIT, OrderKind.PROTECT, OrderKind.CANCEL}),
    TradingState.HALTED: frozenset({OrderKind.EXIT, OrderKind.PROTECT, OrderKind.CANCEL}),
}


class UniverseView(Protocol):
    """What the gate needs from a universe selector: the symbols currently selected."""

    @property
    def selected(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class RiskParams:
    """``[risk]`` as Decimals and milliseconds."""

    max_positions: int = 5
    max_notional_per_symbol: Decimal = Decimal("5000")
    max_gross_exposure: Decimal = Decimal("20000")
    max_gross_leverage: Decimal = Decimal("3")
    daily_loss_limit_fraction: Decimal = Decimal("0.05")
    daily_reset: str = "session"  # session | utc_midnight
    max_consecutive_losses: int = 4
    loss_cooldown_ms: int = 900_000
    max_orders_per_minute: int = 60
    stale_after_intervals: float = 2.0

    @classmethod
    def from_settings(cls, s: RiskSettings) -> RiskParams:
        return cls(
            max_positions=s.max_positions,
            max_notional_per_symbol=Decimal(str(s.max_notional_per_symbol_usdt)),
            max_gross_exposure=Decimal(str(s.max_gross_exposure_usdt)),
            max_gross_leverage=Decimal(str(s.max_gross_leverage)),
            daily_loss_limit_fraction=Decimal(str(s.daily_loss_limit_fraction)),
            daily_reset=s.daily_reset, max_consecutive_losses=s.max_consecutive_losses,
            loss_cooldown_ms=round(s.loss_cooldown_s * 1000), max_orders_per_minute=s.max_orders_per_minute,
            stale_after_intervals=s.stale_after_intervals,
        )


@dataclass(frozen=True, slots=True)
class Exposure:
    """The account as the croupier's position tracker sees it when an entry is checked."""

    equity: Decimal
    notional_by_symbol: Mapping[str, Decimal] = field(default_factory=dict)  # |qty| × mark, + pending entries
    brackets: frozenset[str] = frozenset()  # symbols with a pending or open bracket

    @property
    def gross(self) -> Decimal:
        return sum((abs(v) for v in self.notional_by_symbol.values()), ZERO)

    def occupied(self) -> set[str]:
        return set(self.brackets) | {s for s, v in self.notional_by_symbol.items() if v != 0}


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """An entry the engine wants to send: symbol, side and notional (USDT)."""

    symbol: str
    side: Side
    notional: Decimal


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The gate's answer; ``reason`` is a stable key when ``allowed`` is False."""

    allowed: bool
    reason: str = ""
    detail: str = ""


class RiskGate:
    """Decides whether orders may leave; the engine is its only writer (see module docstring)."""

    def __init__(
        self, params: RiskParams, clock: Clock, *, allowlist: Iterable[str], start_equity: Decimal,
        timeframe: Timeframe = Timeframe.M1, universe: UniverseView | None = None,
    ) -> None:
        self._p = params
        self._clock = clock
        self._allowlist = frozenset(allowlist)
        self._timeframe = timeframe
        self._universe = universe
        self._conditions: set[Condition] = set()
        self._open_breakers: set[str] = set()
        self._ban_until_ms = 0
        now = clock.now_ms()
        self._period_start_ms = self._period_start(now)
        self._start_equity = start_equity
        self._equity = start_equity
        self._realized = ZERO
        self._unrealized = ZERO
        self._consecutive_losses = 0
        self._cooldown_until_ms = 0
        self._orders: deque[int] = deque()
        self._last_close_ms: dict[str, int] = {}
        self._state = TradingState.ACTIVE
        self.rejection_counts: Tally[str] = Tally()
        TRADING_STATE.set(0)

    # ------------------------------------------------------------------ feeds
    def on_candle(self, candle: Candle) -> None:
        """A closed candle of the gate's timeframe: the symbol's data is fresh."""
        if candle.closed and candle.timeframe is self._timeframe:
            close_ms = candle.open_time_ms + candle.timeframe.ms
            self._last_close_ms[candle.symbol] = max(self._last_close_ms.get(candle.symbol, 0), close_ms)

    def on_realized(self, amount: Decimal) -> None:
        """Realized PnL, commission (negative) or funding, as it happens."""
        self._roll_period()
        self._realized += amount
        self._evaluate()

    def set_unrealized(self, total: Decimal) -> None:
        """Unrealized PnL of all open positions at mark."""
        self._unrealized = total
        self._evaluate()

    def set_equity(self, equity: Decimal) -> None:
        """Current equity (wallet + unrealized); the next period starts from it."""
        self._equity = equity
        self._roll_period()

    def on_trade_closed(self, pnl: Decimal) -> None:
        """A bracket finished with net ``pnl``: feeds the consecutive-loss brake."""
        if pnl < 0:
            self._consecutive_losses += 1
            if self._consecutive_losses >= self._p.max_consecutive_losses:
                self._cooldown_until_ms = self._clock.now_ms() + self._p.loss_cooldown_ms
                log.warning("risk: %d losses in a row, no entries for %.0f s",
                            self._consecutive_losses, self._p.loss_cooldown_ms / 1000)
                self._consecutive_losses = 0
        else:
            self._consecutive_losses = 0

    def on_order_sent(self) -> None:
        """Any order that left (entries, legs, exits): the per-minute budget counts them all."""
        now = self._clock.now_ms()
        self._orders.append(now)
        self._prune_orders(now)

    def _prune_orders(self, now_ms: int) -> None:
        while self._orders and self._orders[0] <= now_ms - _MINUTE_MS:
            self._orders.popleft()

    def set_breaker(self, group: str, is_open: bool) -> None:
        """An order-path circuit breaker (e.g. "orders", "algo") opened or closed. Market-data
        breakers need not be reported: their effect shows up as stale data."""
        (self._open_breakers.add if is_open else self._open_breakers.discard)(group)
        self._set(Condition.BREAKER_OPEN, bool(self._open_breakers))

    def set_banned(self, until_ms: int) -> None:
        """HTTP 418: the client is banned until ``until_ms``."""
        self._ban_until_ms = max(self._ban_until_ms, until_ms)
        self._evaluate()

    def halt(self) -> None:
        self._set(Condition.MANUAL_HALT, True)

    def resume(self) -> None:
        self._set(Condition.MANUAL_HALT, False)

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> TradingState:
        self._roll_period()
        self._evaluate()
        return self._state

    @property
    def conditions(self) -> frozenset[Condition]:
        self._evaluate()
        return frozenset(self._conditions)

    @property
    def daily_pnl(self) -> Decimal:
        return self._realized + self._unrealized

    def allows(self, kind: OrderKind) -> bool:
        return kind in ALLOWED[self.state]

    def entry_headroom(self, symbol: str, exposure: Exposure) -> Decimal:
        """The largest entry notional the size limits would still accept on ``symbol`` (≥ 0).

        Feed it to sizing as ``max_notional`` so a decision is sized into the limits instead of
        being rejected for exceeding them.
        """
        room = min(
            self._p.max_notional_per_symbol - abs(exposure.notional_by_symbol.get(symbol, ZERO)),
            self._p.max_gross_exposure - exposure.gross,
            exposure.equity * self._p.max_gross_leverage - exposure.gross,
        )
        return max(room, ZERO)

    def check_entry(self, intent: EntryIntent, exposure: Exposure) -> RiskVerdict:
        """May this entry leave? Rejections are counted by reason."""
        verdict = self._entry_problem(intent, exposure)
        if not verdict.allowed:
            self.rejection_counts[verdict.reason] += 1
            RISK_REJECTIONS.labels(reason=verdict.reason).inc()
        return verdict

    def _entry_problem(self, intent: EntryIntent, ex: Exposure) -> RiskVerdict:
        state = self.state
        now = self._clock.now_ms()
        sym = intent.symbol
        if OrderKind.ENTRY not in ALLOWED[state]:
            causes = ",".join(sorted(c.value for c in self._conditions))
            return RiskVerdict(False, state.value.lower(), causes)
        if sym not in self._allowlist:
            return RiskVerdict(False, "not_allowlisted", sym)
        if self._universe is not None and sym not in self._universe.selected:
            return RiskVerdict(False, "outside_universe", sym)
        last = self._last_close_ms.get(sym)
        limit_ms = self._p.stale_after_intervals * self._timeframe.ms
        if last is None or now - last > limit_ms:
            age = "no candle yet" if last is None else f"last close {(now - last) / 1000:.0f} s ago"
            return RiskVerdict(False, "stale_data", age)
        if now < self._cooldown_until_ms:
            return RiskVerdict(False, "loss_cooldown", f"until {self._cooldown_until_ms}")
        self._prune_orders(now)
        if len(self._orders) >= self._p.max_orders_per_minute:
            return RiskVerdict(False, "order_rate", f"{len(self._orders)} orders in the last minute")
        if ex.equity <= 0:
            return RiskVerdict(False, "no_equity", str(ex.equity))
        occupied = ex.occupied()
        if sym in occupied:
            return RiskVerdict(False, "bracket_open", sym)
        if len(occupied) >= self._p.max_positions:
            return RiskVerdict(False, "max_positions", f"{len(occupied)} open")
        symbol_notional = abs(ex.notional_by_symbol.get(sym, ZERO)) + intent.notional
        if symbol_notional > self._p.max_notional_per_symbol:
            return RiskVerdict(False, "max_notional_symbol", f"{symbol_notional} > {self._p.max_notional_per_symbol}")
        gross = ex.gross + intent.notional
        if gross > self._p.max_gross_exposure:
            return RiskVerdict(False, "max_gross_exposure", f"{gross} > {self._p.max_gross_exposure}")
        if gross > ex.equity * self._p.max_gross_leverage:
            return RiskVerdict(False, "max_gross_leverage", f"{gross / ex.equity:.2f}x > {self._p.max_gross_leverage}x")
        return RiskVerdict(True)

    # ------------------------------------------------------------------ internals
    def _period_start(self, now_ms: int) -> int:
        return now_ms - now_ms % _DAY_MS if self._p.daily_reset == "utc_midnight" else now_ms

    def _roll_period(self) -> None:
        if self._p.daily_reset != "utc_midnight":
            return
        now = self._clock.now_ms()
        if now - self._period_start_ms >= _DAY_MS:
            log.info("risk: new UTC day, daily PnL %s reset (equity %s)", self.daily_pnl, self._equity)
            self._period_start_ms = self._period_start(now)
            self._start_equity = self._equity
            self._realized = ZERO
            self._conditions.discard(Condition.DAILY_LOSS)
            self._evaluate()

    def _evaluate(self) -> None:
        limit = self._start_equity * self._p.daily_loss_limit_fraction
        if self.daily_pnl <= -limit:
            self._conditions.add(Condition.DAILY_LOSS)  # latched until the period resets
        banned = self._clock.now_ms() < self._ban_until_ms
        (self._conditions.add if banned else self._conditions.discard)(Condition.RATE_LIMIT_BAN)
        self._apply_state()

    def _set(self, condition: Condition, active: bool) -> None:
        (self._conditions.add if active else self._conditions.discard)(condition)
        self._evaluate()

    def _apply_state(self) -> None:
        new = max(
            (CONDITION_STATE[c] for c in self._conditions), key=STATE_LEVEL.__getitem__,
            default=TradingState.ACTIVE,
        )
        if new is not self._state:
            log.warning("risk: %s → %s (%s)", self._state.value, new.value,
                        ",".join(sorted(c.value for c in self._conditions)) or "clear")
            self._state = new
            TRADING_STATE.set(STATE_LEVEL[new])

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for snapshots (Decimal as str). Breakers and data freshness are not
        saved: they are re-learned from the live connection after a restart."""
        return {
            "version": STATE_VERSION,
            "period_start_ms": self._period_start_ms,
            "start_equity": str(self._start_equity),
            "equity": str(self._equity),
            "realized": str(self._realized),
            "latched": sorted(c.value for c in self._conditions
                              if c in (Condition.DAILY_LOSS, Condition.MANUAL_HALT)),
            "consecutive_losses": self._consecutive_losses,
            "cooldown_until_ms": self._cooldown_until_ms,
            "ban_until_ms": self._ban_until_ms,
            "orders_ms": list(self._orders),
            "rejections": dict(self.rejection_counts),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load ``to_dict`` output into a freshly built gate (same params, clock and allowlist).

        A restart continues the loss period it interrupted (a crash must not reset the daily
        loss limit); a manual halt and a daily-loss halt stay latched.
        """
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported risk state version {data.get('version')!r}")
        self._period_start_ms = int(data["period_start_ms"])
        self._start_equity = Decimal(data["start_equity"])
        self._equity = Decimal(data["equity"])
        self._realized = Decimal(data["realized"])
        self._conditions = {Condition(c) for c in data["latched"]}
        self._consecutive_losses = int(data["consecutive_losses"])
        self._cooldown_until_ms = int(data["cooldown_until_ms"])
        self._ban_until_ms = int(data["ban_until_ms"])
        self._orders = deque(int(t) for t in data["orders_ms"])
        self.rejection_counts = Tally({str(k): int(v) for k, v in data["rejections"].items()})
        self._roll_period()
        self._evaluate()
