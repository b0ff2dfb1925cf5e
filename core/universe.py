"""Optional universe selector: which of the candidate symbols to trade right now.

Pure apart from the injected clock: the engine feeds ``MarketStats`` (from 24 h tickers and
order-book depth) and reads ``selected``. Ranking: each candidate gets three ranks —
24 h momentum (|change|, larger is better: a two-sided bot wants movement), spread (smaller
is better) and depth (larger is better) — and the sum of ranks orders them (ties by symbol
name, so the result is deterministic). The top ``top_n`` are the target.

Refreshes happen at most every ``refresh_s`` (≥ 1 h). After the first selection, one refresh
changes at most ``max_changes_per_refresh`` members: the worst-ranked members leave for the
best-ranked newcomers, pair by pair. A member with no stats this time is treated as worst.
Only candidates that are on the risk allowlist can be selected. Leaving the universe only
stops new entries; open positions keep their protection and exit normally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from config.settings import UniverseSettings
from core.ports import Clock

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class MarketStats:
    """One candidate's market quality, as the engine measured it."""

    symbol: str
    change_24h_fraction: Decimal  # (last − open 24 h ago) / open 24 h ago
    spread_bps: Decimal  # (ask − bid) / mid × 10 000
    depth_usdt: Decimal  # quote value resting within the measured band on both sides


def rank(stats: Iterable[MarketStats]) -> list[str]:
    """Symbols best first by the sum of their momentum, spread and depth ranks."""
    items = list(stats)
    if not items:
        return []
    by_momentum = sorted(items, key=lambda s: (-abs(s.change_24h_fraction), s.symbol))
    by_spread = sorted(items, key=lambda s: (s.spread_bps, s.symbol))
    by_depth = sorted(items, key=lambda s: (-s.depth_usdt, s.symbol))
    total: dict[str, int] = {s.symbol: 0 for s in items}
    for ordering in (by_momentum, by_spread, by_depth):
        for position, s in enumerate(ordering):
            total[s.symbol] += position
    return sorted(total, key=lambda sym: (total[sym], sym))


class UniverseSelector:
    """Keeps the traded universe: top N by rank, refreshed at most hourly, with churn limits."""

    def __init__(self, settings: UniverseSettings, clock: Clock, *, allowlist: Iterable[str]) -> None:
        allowed = set(allowlist)
        self._candidates = [s for s in settings.candidates if s in allowed] or sorted(allowed)
        self._top_n = settings.top_n
        self._refresh_ms = round(settings.refresh_s * 1000)
        self._max_changes = settings.max_changes_per_refresh
        self._clock = clock
        self._selected: tuple[str, ...] = ()
        self._last_refresh_ms: int | None = None

    @property
    def selected(self) -> frozenset[str]:
        return frozenset(self._selected)

    @property
    def ordered(self) -> tuple[str, ...]:
        """The selection, best-ranked first as of the last refresh."""
        return self._selected

    def due(self) -> bool:
        return self._last_refresh_ms is None or self._clock.now_ms() - self._last_refresh_ms >= self._refresh_ms

    def refresh(self, stats: Sequence[MarketStats]) -> bool:
        """Re-rank if a refresh is due; True when it ran. Stats for non-candidates are ignored."""
        if not self.due():
            return False
        usable = [s for s in stats if s.symbol in self._candidates and _finite(s)]
        ranking = rank(usable)
        target = ranking[: self._top_n]
        if not self._selected:
            new = list(target)
        else:
            position = {sym: i for i, sym in enumerate(ranking)}
            worst_first = sorted(self._selected, key=lambda s: -position.get(s, math.inf))
            leaving = [s for s in worst_first if s not in target]
            joining = [s for s in target if s not in self._selected]
            swaps = min(len(leaving), len(joining), self._max_changes)
            out = set(leaving[:swaps])
            kept = [s for s in self._selected if s not in out]
            # Free seats (top_n grew, or members vanished from the ranking) also count as changes.
            room = max(0, self._top_n - len(kept) - swaps)
            extra = min(room, self._max_changes - swaps, len(joining) - swaps)
            new = kept + joining[: swaps + max(0, extra)]
            new = sorted(new, key=lambda s: position.get(s, math.inf))[: self._top_n]
        self._selected = tuple(new)
        self._last_refresh_ms = self._clock.now_ms()
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "selected": list(self._selected), "last_refresh_ms": self._last_refresh_ms}

    def restore(self, data: Mapping[str, Any]) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported universe state version {data.get('version')!r}")
        self._selected = tuple(s for s in data["selected"] if s in self._candidates)
        last = data["last_refresh_ms"]
        self._last_refresh_ms = None if last is None else int(last)


def _finite(s: MarketStats) -> bool:
    return all(v.is_finite() for v in (s.change_24h_fraction, s.spread_bps, s.depth_usdt)) and s.spread_bps >= 0
