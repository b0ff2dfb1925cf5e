"""``core.fast_replay._sure_fit_window``: the closes at which the fast replay takes sizing's
answer for granted within an epoch, held against ``size_entry`` itself.

The fast replay learns a notional sizing granted on the exposure bound (``Size.notional``) and
from then on skips sizing at any close inside the window built from it, on every symbol. Here,
on real exchangeInfo filters (and variants with a market step, minimum and maximum of their
own), whatever notional at least that floor sizing wants, at any close the window admits —
quantized to the tick as the venue does — ``size_entry`` must pass.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from config.settings import SizingSettings
from core.fast_replay import _sure_fit_window
from core.history import CandleSeries
from core.sensor_tracker import PerformanceStats
from core.sizing import Size, SizingMode, SizingParams, size_entry
from core.types import SymbolRules, Timeframe
from exchanges.sim.feed import SymbolData
from tests.conftest import FIXTURES
from tests.test_sizing import rules_from_exchange_info

D = Decimal
INFO = FIXTURES / "cryptofeed/extracted/rest_exchangeInfo_full_2021-07-22.json"
PARAMS = replace(SizingParams.from_settings(SizingSettings()), mode=SizingMode.FIXED_NOTIONAL)
NONE = PerformanceStats(0, 0, 0, 0.0, 0.0)


@functools.cache
def all_rules() -> list[SymbolRules]:
    base = sorted(rules_from_exchange_info(Path(INFO)).values(), key=lambda r: r.symbol)
    variants = []
    for r in base[:20]:
        # a coarser market step, a larger market minimum, a small market maximum, a larger
        # minimum notional: each bound of the window in turn is the one that binds
        variants += [replace(r, market_step_size=r.step_size * 10, market_min_qty=r.min_qty * 10),
                     replace(r, market_max_qty=r.min_qty * 40, min_notional=D(50))]
    return [r for r in base + variants if r.status == "TRADING"]


def venue_close(rules: SymbolRules, close: float) -> Decimal:
    """The close as the simulated venue turns it into a Decimal (``SymbolData.decimal_bar``)."""
    series = CandleSeries(rules.symbol, Timeframe.M1, np.array([0], dtype=np.int64), *(np.array([close]),) * 4,
                          np.array([1.0]))
    return SymbolData(rules.symbol, series).decimal_bar(0, rules.tick_size)[3]


@settings(max_examples=400, deadline=None)
@given(which=st.integers(0, 10_000), granted=st.decimals(D("1"), D("1000000"), places=4),
       more=st.decimals(D("0"), D("100000"), places=2), at=st.sampled_from([0.0, 1.0]) | st.floats(0, 1), granted_at=st.floats(0, 1))
def test_sizing_passes_inside_the_window(which: int, granted: Decimal, more: Decimal, at: float,
                                         granted_at: float) -> None:
    rules = all_rules()[which % len(all_rules())]
    # the floor is what sizing granted once (quantity × that close), as the replay learns it
    first = size_entry(price=venue_close(rules, float(granted) / 10 ** (granted_at * 6)), sl_fraction=0.01,
                       equity=D(10) ** 9, rules=rules, stats=NONE, params=replace(PARAMS, fixed_notional_usdt=granted),
                       market=True)
    assume(isinstance(first, Size))
    assert isinstance(first, Size)
    low, high = _sure_fit_window(rules, first.notional)
    assume(low <= high)
    close = low + (high - low) * at
    price = venue_close(rules, close)
    out = size_entry(price=price, sl_fraction=0.01, equity=D(10) ** 9, rules=rules, stats=NONE,
                     params=replace(PARAMS, fixed_notional_usdt=first.notional + more), market=True,
                     max_notional=first.notional + more)
    assert isinstance(out, Size), (rules, first.notional, more, close, price, out)


def test_window_is_most_of_where_sizing_passes() -> None:
    """Not vacuous: on BTCUSDT with 500 USDT the window reaches most of the way to the price at
    which 500 USDT no longer buys the minimum quantity plus two steps."""
    rules = next(r for r in all_rules() if r.symbol == "BTCUSDT")
    low, high = _sure_fit_window(rules, D(500))
    # 500 / (0.001 + 0.001 + 0.001) ≈ 166,666; (500 − 5) / 0.002 = 247,500
    assert low < 1 and 166_000 < high < 166_667
    assert _sure_fit_window(replace(rules, status="BREAK"), D(500)) == (1.0, 0.0)
