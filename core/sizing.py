"""Position sizing: how much to buy or sell for a decision, in exact Decimal.

Units: a *fraction* is a share of equity committed as initial margin, so
``notional = equity × fraction × leverage`` (``[sizing].leverage`` is the leverage Casino sets
on the exchange). With the defaults (1 % … 10 %, 5×) a 10 000 USDT account opens between
500 and 5 000 USDT of notional.

Modes
    kelly           half-Kelly from the tracker's pooled stats of the decision's winning voters:
                    f* = p − (1 − p) / b  (p = win rate, b = average win R / average loss R),
                    fraction = f* / 2 clamped to [min_fraction, max_fraction]. Until there are
                    ``min_trades_for_kelly`` resolved votes *and* at least one loss (b undefined)
                    the fixed ``fallback_fraction`` is used. No edge (f* ≤ 0) → min_fraction.
    fixed_notional  ``fixed_notional_usdt`` per entry.
    fixed_risk      lose ``risk_fraction`` of equity at the stop: notional = equity × risk / SL.

Every mode is capped at ``max_fraction`` (and at the exchange's maximum quantity). The
quantity is rounded DOWN to the symbol's step; if that falls below what the exchange accepts
(min qty, min notional) the entry is skipped with a reason — it is never rounded up into more
risk than asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from config.settings import SizingSettings
from core.metrics import SIZING_SKIPS
from core.sensor_tracker import PerformanceStats
from core.types import SymbolRules


class SizingMode(str, Enum):
    """How the entry notional is chosen (module docstring)."""

    KELLY = "kelly"
    FIXED_NOTIONAL = "fixed_notional"
    FIXED_RISK = "fixed_risk"


@dataclass(frozen=True, slots=True)
class SizingParams:
    """``[sizing]`` as Decimals (fractions are of equity, as margin)."""

    mode: SizingMode = SizingMode.KELLY
    min_fraction: Decimal = Decimal("0.01")
    max_fraction: Decimal = Decimal("0.10")
    fallback_fraction: Decimal = Decimal("0.01")
    min_trades_for_kelly: int = 10
    fixed_notional_usdt: Decimal = Decimal("100")
    risk_fraction: Decimal = Decimal("0.005")
    leverage: int = 5

    @classmethod
    def from_settings(cls, s: SizingSettings) -> SizingParams:
        return cls(
            mode=SizingMode(s.mode), min_fraction=_dec(s.min_fraction), max_fraction=_dec(s.max_fraction),
            fallback_fraction=_dec(s.fallback_fraction), min_trades_for_kelly=s.min_trades_for_kelly,
            fixed_notional_usdt=_dec(s.fixed_notional_usdt), risk_fraction=_dec(s.risk_fraction),
            leverage=s.leverage,
        )

    @property
    def max_notional_fraction(self) -> Decimal:
        """The largest notional as a multiple of equity: max_fraction × leverage."""
        return self.max_fraction * self.leverage


@dataclass(frozen=True, slots=True)
class Size:
    """An entry size the exchange will accept."""

    quantity: Decimal
    notional: Decimal  # quantity × price
    fraction: Decimal  # of equity, as margin (notional / leverage / equity)
    basis: str  # kelly | fallback | fixed_notional | fixed_risk
    capped: bool  # the max_fraction or exchange maximum cut the requested size


@dataclass(frozen=True, slots=True)
class SizeSkip:
    """No valid size; ``reason`` is a short stable key."""

    reason: str
    detail: str = ""


def kelly_fraction(stats: PerformanceStats, params: SizingParams) -> tuple[Decimal, str]:
    """Half-Kelly margin fraction and its basis ('kelly' or 'fallback'), clamped to the bounds."""
    if stats.resolved < params.min_trades_for_kelly or stats.losses < 1:
        return min(params.fallback_fraction, params.max_fraction), "fallback"
    if stats.wins == 0 or stats.payoff <= 0:
        return params.min_fraction, "kelly"  # no winning evidence: the smallest allowed size
    p = _dec(stats.win_rate)
    full = p - (1 - p) / _dec(stats.payoff)
    half = full / 2
    return min(max(half, params.min_fraction), params.max_fraction), "kelly"


def size_entry(
    *,
    price: Decimal,
    sl_fraction: float,
    equity: Decimal,
    rules: SymbolRules,
    stats: PerformanceStats,
    params: SizingParams,
    market: bool = True,
    max_notional: Decimal | None = None,
) -> Size | SizeSkip:
    """Size an entry at ``price`` (the expected fill: last close or mark for MARKET, limit for LIMIT).

    ``max_notional`` is an extra cap, normally ``RiskGate.entry_headroom``.
    """
    if rules.status != "TRADING":
        return _skip("symbol_not_trading", f"{rules.symbol} status {rules.status}")
    if equity <= 0:
        return _skip("no_equity", f"equity {equity}")
    if price <= 0:
        return _skip("bad_price", f"price {price}")
    if not (math.isfinite(sl_fraction) and 0 < sl_fraction < 1):
        return _skip("bad_sl_distance", f"sl_fraction {sl_fraction}")

    cap = equity * params.max_notional_fraction
    if max_notional is not None:
        if max_notional <= 0:
            return _skip("no_headroom", f"risk limits leave {max_notional} USDT on {rules.symbol}")
        cap = min(cap, max_notional)
    if params.mode is SizingMode.KELLY:
        fraction, basis = kelly_fraction(stats, params)
        wanted = equity * fraction * params.leverage
    elif params.mode is SizingMode.FIXED_NOTIONAL:
        wanted, basis = params.fixed_notional_usdt, "fixed_notional"
    else:
        wanted, basis = equity * params.risk_fraction / _dec(sl_fraction), "fixed_risk"
    notional = min(wanted, cap)
    raw_qty = notional / price
    quantity = rules.round_qty(raw_qty, market=market)  # DOWN to the step, and ≤ the exchange max
    step = rules.market_step_size if market and rules.market_step_size else rules.step_size
    capped = wanted > cap or quantity < (raw_qty // step) * step  # the exchange max cut it

    needed = rules.min_qty_for_notional(price)
    if quantity <= 0 or quantity < needed:
        reason = "below_min_notional" if needed > rules.min_qty else "below_min_qty"
        return _skip(reason, f"{quantity} < {needed} {rules.symbol} at {price} (wanted {notional} USDT)")
    failures = rules.check(quantity=quantity, price=None, reference_price=price, market=market)
    if failures:
        return _skip(f"filter_{failures[0].filter.lower()}", failures[0].message)
    actual = quantity * price
    return Size(quantity, actual, actual / params.leverage / equity, basis, capped)


def _skip(reason: str, detail: str) -> SizeSkip:
    SIZING_SKIPS.labels(reason=reason).inc()
    return SizeSkip(reason, detail)


def _dec(x: float | int | Decimal) -> Decimal:
    """A config/sensor float as the Decimal its text says (0.1 → Decimal('0.1'))."""
    return x if isinstance(x, Decimal) else Decimal(str(x))

