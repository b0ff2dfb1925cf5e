"""Universe selector: ranking, hourly refresh, churn limits, allowlist, persistence."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import UniverseSettings
from core.clock import FakeClock
from core.universe import MarketStats, UniverseSelector, rank

D = Decimal
HOUR_MS = 3_600_000
SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


def ms(symbol: str, change: str, spread: str, depth: str) -> MarketStats:
    return MarketStats(symbol, D(change), D(spread), D(depth))


def test_rank_sums_momentum_spread_and_depth_ranks() -> None:
    stats = [
        ms("BTCUSDT", "0.01", "0.1", "5000000"),
        ms("ETHUSDT", "-0.03", "0.2", "3000000"),  # a fall is momentum too (|change|)
        ms("DOGEUSDT", "0.08", "2.0", "100000"),
    ]
    # momentum: DOGE 0, ETH 1, BTC 2; spread: BTC 0, ETH 1, DOGE 2; depth: BTC 0, ETH 1, DOGE 2
    # totals: BTC 2, ETH 3, DOGE 4
    assert rank(stats) == ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]
    assert rank([]) == []


def make(top_n: int = 3, changes: int = 1) -> tuple[UniverseSelector, FakeClock]:
    clock = FakeClock(1_689_678_780_000)
    settings = UniverseSettings(enabled=True, candidates=SYMS, top_n=top_n, max_changes_per_refresh=changes)
    return UniverseSelector(settings, clock, allowlist=SYMS[:-1]), clock  # ADA is not allowlisted


def stats_favouring(order: list[str]) -> list[MarketStats]:
    """Stats where ``order`` is best first on every measure."""
    n = len(order)
    return [ms(s, str(Decimal(n - i) / 100), str(i), str((n - i) * 1000)) for i, s in enumerate(order)]


def test_first_refresh_takes_the_top_n_within_the_allowlist() -> None:
    sel, _ = make()
    assert sel.refresh(stats_favouring(["ADAUSDT", "DOGEUSDT", "SOLUSDT", "BTCUSDT", "ETHUSDT"]))
    assert sel.ordered == ("DOGEUSDT", "SOLUSDT", "BTCUSDT")  # ADA ranks first but is not allowed


def test_refresh_at_most_hourly_and_churn_limited() -> None:
    sel, clock = make(top_n=3, changes=1)
    sel.refresh(stats_favouring(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]))
    flipped = stats_favouring(["DOGEUSDT", "XRPUSDT", "SOLUSDT", "ETHUSDT", "BTCUSDT"])
    clock.set_ms(clock.now_ms() + HOUR_MS - 1)
    assert not sel.refresh(flipped)
    assert sel.selected == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    clock.set_ms(clock.now_ms() + 1)
    assert sel.refresh(flipped)
    # One change allowed: the worst member now (BTC) leaves for the best newcomer (DOGE).
    assert sel.selected == {"DOGEUSDT", "ETHUSDT", "SOLUSDT"}
    clock.set_ms(clock.now_ms() + HOUR_MS)
    sel.refresh(flipped)
    assert sel.selected == {"DOGEUSDT", "XRPUSDT", "SOLUSDT"}
    clock.set_ms(clock.now_ms() + HOUR_MS)
    sel.refresh(flipped)
    assert sel.selected == {"DOGEUSDT", "XRPUSDT", "SOLUSDT"}  # settled


def test_a_member_without_stats_leaves_first_and_bad_stats_are_ignored() -> None:
    sel, clock = make(top_n=2, changes=1)
    sel.refresh(stats_favouring(["BTCUSDT", "ETHUSDT", "SOLUSDT"]))
    clock.set_ms(clock.now_ms() + HOUR_MS)
    stats = stats_favouring(["ETHUSDT", "SOLUSDT", "XRPUSDT"]) + [ms("BTCUSDT", "NaN", "1", "1")]
    sel.refresh(stats)
    assert sel.selected == {"ETHUSDT", "SOLUSDT"}


def test_selection_survives_a_restart() -> None:
    sel, _ = make()
    sel.refresh(stats_favouring(SYMS))
    saved = json.loads(json.dumps(sel.to_dict()))
    again, _ = make()
    again.restore(saved)
    assert again.ordered == sel.ordered
    assert not again.due()  # restored an hour's refresh budget: no immediate re-rank


@settings(max_examples=150, deadline=None)
@given(rounds=st.lists(st.lists(st.tuples(st.sampled_from(SYMS), st.integers(-20, 20), st.integers(0, 50),
                                          st.integers(0, 10**6)), max_size=8), min_size=1, max_size=6),
       top_n=st.integers(1, 5), changes=st.integers(0, 3))
def test_selection_stays_within_limits(rounds: list[list[tuple[str, int, int, int]]], top_n: int, changes: int) -> None:
    sel, clock = make(top_n=top_n, changes=changes)
    previous: frozenset[str] | None = None
    for stats in rounds:
        sel.refresh([ms(s, str(Decimal(c) / 100), str(sp), str(d)) for s, c, sp, d in stats])
        assert len(sel.selected) <= top_n
        assert sel.selected <= set(SYMS[:-1])  # never outside the allowlist
        if previous:  # after the first selection, churn is limited
            assert len(sel.selected - previous) <= changes
        previous = sel.selected if sel.selected else previous
        clock.set_ms(clock.now_ms() + HOUR_MS)
