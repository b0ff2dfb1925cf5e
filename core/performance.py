"""Performance statistics of a session: per-trade figures and per-minute equity risk ratios.

Definitions (written down because every report reader will ask):
- win rate: trades with net PnL > 0 / all closed trades;
- profit factor: sum of winning net PnL / |sum of losing net PnL| (None without a loss);
- expectancy: mean net PnL per trade, in quote currency;
- max drawdown: the largest fall of equity from a running peak, as a fraction of that peak;
- Sharpe and Sortino: on per-minute simple returns of equity resampled to minute closes,
  annualised with √525 600 (minutes per year), risk-free rate 0; Sortino's denominator is
  the root mean square of the negative returns. None with fewer than 3 returns or no dispersion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

MINUTES_PER_YEAR = 525_600


@dataclass(frozen=True, slots=True)
class TradeStats:
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    gross_pnl: Decimal
    net_pnl: Decimal
    fees: Decimal
    funding: Decimal
    profit_factor: float | None
    expectancy: Decimal | None
    best: Decimal | None
    worst: Decimal | None


def trade_stats(
    net_pnls: Sequence[Decimal], gross_pnls: Sequence[Decimal], fees: Sequence[Decimal], funding: Sequence[Decimal]
) -> TradeStats:
    n = len(net_pnls)
    wins = [p for p in net_pnls if p > 0]
    losses = [p for p in net_pnls if p < 0]
    won = sum(wins, Decimal(0))
    lost = sum(losses, Decimal(0))
    return TradeStats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / n if n else None,
        gross_pnl=sum(gross_pnls, Decimal(0)),
        net_pnl=sum(net_pnls, Decimal(0)),
        fees=sum(fees, Decimal(0)),
        funding=sum(funding, Decimal(0)),
        profit_factor=float(won / -lost) if lost < 0 else None,
        expectancy=(sum(net_pnls, Decimal(0)) / n) if n else None,
        best=max(net_pnls) if n else None,
        worst=min(net_pnls) if n else None,
    )


def minute_closes(points: Sequence[tuple[int, float]]) -> list[float]:
    """Equity at the close of each minute (last observation carried into empty minutes)."""
    if not points:
        return []
    closes: list[float] = []
    minute = points[0][0] // 60_000
    last = points[0][1]
    for t, value in points:
        m = t // 60_000
        while minute < m:
            closes.append(last)
            minute += 1
        last = value
    closes.append(last)
    return closes


def returns(closes: Sequence[float]) -> list[float]:
    return [(b - a) / a for a, b in zip(closes, closes[1:], strict=False) if a > 0]


def sharpe(rets: Sequence[float]) -> float | None:
    if len(rets) < 3:
        return None
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(MINUTES_PER_YEAR)


def sortino(rets: Sequence[float]) -> float | None:
    if len(rets) < 3:
        return None
    mean = sum(rets) / len(rets)
    downside = [min(r, 0.0) ** 2 for r in rets]
    dd = math.sqrt(sum(downside) / len(rets))
    if dd <= 0:
        return None
    return mean / dd * math.sqrt(MINUTES_PER_YEAR)


def drawdown_series(values: Sequence[float]) -> list[float]:
    """Drawdown from the running peak at each point, as a non-negative fraction."""
    peak = -math.inf
    out = []
    for v in values:
        peak = max(peak, v)
        out.append((peak - v) / peak if peak > 0 else 0.0)
    return out


def max_drawdown(values: Sequence[float]) -> float:
    return max(drawdown_series(values), default=0.0)


def percentiles(samples: Sequence[float], qs: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, keyed 'p50', 'p90', 'p99', plus 'max' and 'count'."""
    out: dict[str, float | None] = {}
    ordered = sorted(samples)
    for q in qs:
        key = f"p{round(q * 100)}"
        if not ordered:
            out[key] = None
            continue
        rank = max(1, math.ceil(q * len(ordered)))
        out[key] = ordered[rank - 1]
    out["max"] = ordered[-1] if ordered else None
    out["count"] = float(len(ordered))
    return out
