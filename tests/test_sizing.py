"""Sizing: half-Kelly, fallback, fixed modes, exchange filters — on real exchangeInfo filters."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import SizingSettings
from core.sensor_tracker import PerformanceStats
from core.sizing import Size, SizeSkip, SizingMode, SizingParams, kelly_fraction, size_entry
from core.types import SymbolRules

D = Decimal
INFO = "cryptofeed/extracted/rest_exchangeInfo_BTC_ETH_SUSHI_2021-07-22.json"


def rules_from_exchange_info(path: Path) -> dict[str, SymbolRules]:
    """The few filters sizing needs, read from a real Binance exchangeInfo answer."""
    out = {}
    for sym in json.loads(path.read_text())["symbols"]:
        f = {x["filterType"]: x for x in sym["filters"]}
        out[sym["symbol"]] = SymbolRules(
            symbol=sym["symbol"], tick_size=D(f["PRICE_FILTER"]["tickSize"]),
            step_size=D(f["LOT_SIZE"]["stepSize"]), min_qty=D(f["LOT_SIZE"]["minQty"]),
            max_qty=D(f["LOT_SIZE"]["maxQty"]), market_step_size=D(f["MARKET_LOT_SIZE"]["stepSize"]),
            market_min_qty=D(f["MARKET_LOT_SIZE"]["minQty"]), market_max_qty=D(f["MARKET_LOT_SIZE"]["maxQty"]),
            min_notional=D(f["MIN_NOTIONAL"]["notional"]), status=sym["status"],
        )
    return out


@pytest.fixture(scope="module")
def rules(fixtures_dir: Path) -> dict[str, SymbolRules]:
    return rules_from_exchange_info(fixtures_dir / INFO)


P = SizingParams.from_settings(SizingSettings())  # 1 % … 10 %, fallback 1 %, 10 trades, 5×
NONE = PerformanceStats(0, 0, 0, 0.0, 0.0)


def stats(wins: int, losses: int, avg_win: float = 1.5, avg_loss: float = 1.0) -> PerformanceStats:
    return PerformanceStats(wins + losses, wins, losses, avg_win if wins else 0.0, avg_loss if losses else 0.0)


@pytest.mark.parametrize(("st_", "want", "basis"), [
    (NONE, D("0.01"), "fallback"),                     # no history
    (stats(9, 0), D("0.01"), "fallback"),              # ≥ 10 needed
    (stats(12, 0), D("0.01"), "fallback"),             # no loss yet: payoff undefined
    (stats(6, 4), D("0.1"), "kelly"),                  # f* = .6 − .4/1.5 = .3333 → half .1667 → max .10
    (stats(5, 5, 1.2, 1.0), D("0.04166666666666666666666666667"), "kelly"),  # (.5 − .5/1.2)/2
    (stats(3, 7), D("0.01"), "kelly"),                 # f* < 0: no edge → min
    (stats(0, 12), D("0.01"), "kelly"),                # never won: min, not the fallback
])
def test_kelly_fraction(st_: PerformanceStats, want: Decimal, basis: str) -> None:
    fraction, got_basis = kelly_fraction(st_, P)
    assert got_basis == basis
    assert fraction == pytest.approx(want, rel=Decimal("1e-12"))


def test_kelly_mode_sizes_from_equity_and_leverage(rules: dict[str, SymbolRules]) -> None:
    # 10 000 × 0.041666… × 5 = 2083.33 USDT at 29 000 → 0.0718… BTC → 0.071 (step 0.001, DOWN)
    size = size_entry(price=D("29000"), sl_fraction=0.01, equity=D("10000"), rules=rules["BTCUSDT"],
                      stats=stats(5, 5, 1.2, 1.0), params=P)
    assert isinstance(size, Size)
    assert (size.quantity, size.basis, size.capped) == (D("0.071"), "kelly", False)
    assert size.notional == D("2059.000")
    assert size.notional <= D("10000") * P.max_notional_fraction


@pytest.mark.parametrize(("mode", "equity", "price", "sl", "symbol", "want"), [
    # fixed_notional 100 USDT at 29 000 → 0.00344 → 0.003
    (SizingMode.FIXED_NOTIONAL, "10000", "29000", 0.01, "BTCUSDT", ("qty", D("0.003"))),
    # fixed_risk: 10 000 × 0.005 / 0.02 = 2 500 USDT at 1 800 → 1.3888 → 1.388 ETH
    (SizingMode.FIXED_RISK, "10000", "1800", 0.02, "ETHUSDT", ("qty", D("1.388"))),
    # fixed_risk with a tight stop wants 50 000 USDT; capped at 10 000 × 0.10 × 5 = 5 000 → 2.777 ETH
    (SizingMode.FIXED_RISK, "10000", "1800", 0.001, "ETHUSDT", ("qty", D("2.777"))),
    # fallback 1 % of 30 USDT × 5 = 1.5 USDT of BTC: 0.0000517 → 0 → never rounded up
    (SizingMode.KELLY, "30", "29000", 0.01, "BTCUSDT", ("skip", "below_min_qty")),
    # 1.5 USDT of SUSHI at 0.9: 1.66 → 1 SUSHI = 0.9 USDT < 5 USDT min notional
    (SizingMode.KELLY, "30", "0.9", 0.01, "SUSHIUSDT", ("skip", "below_min_notional")),
    (SizingMode.KELLY, "0", "29000", 0.01, "BTCUSDT", ("skip", "no_equity")),
    (SizingMode.KELLY, "10000", "0", 0.01, "BTCUSDT", ("skip", "bad_price")),
    (SizingMode.KELLY, "10000", "29000", 0.0, "BTCUSDT", ("skip", "bad_sl_distance")),
    (SizingMode.KELLY, "10000", "29000", float("nan"), "BTCUSDT", ("skip", "bad_sl_distance")),
])
def test_modes_and_skips(rules: dict[str, SymbolRules], mode: SizingMode, equity: str, price: str,
                         sl: float, symbol: str, want: tuple[str, object]) -> None:
    out = size_entry(price=D(price), sl_fraction=sl, equity=D(equity), rules=rules[symbol], stats=NONE,
                     params=replace(P, mode=mode))
    if want[0] == "qty":
        assert isinstance(out, Size) and out.quantity == want[1]
    else:
        assert isinstance(out, SizeSkip) and out.reason == want[1]


def test_exchange_market_max_caps_and_reports(rules: dict[str, SymbolRules]) -> None:
    # SUSHI's MARKET_LOT_SIZE max is 100 000 while LOT_SIZE allows 10 000 000.
    big = replace(P, mode=SizingMode.FIXED_NOTIONAL, fixed_notional_usdt=D("400000"))
    out = size_entry(price=D("1"), sl_fraction=0.01, equity=D("1000000"), rules=rules["SUSHIUSDT"],
                     stats=NONE, params=big)
    assert isinstance(out, Size) and out.quantity == D("100000") and out.capped
    limit = size_entry(price=D("1"), sl_fraction=0.01, equity=D("1000000"), rules=rules["SUSHIUSDT"],
                       stats=NONE, params=big, market=False)
    assert isinstance(limit, Size) and limit.quantity == D("400000")


def test_symbol_not_trading_is_skipped(rules: dict[str, SymbolRules]) -> None:
    halted = replace(rules["BTCUSDT"], status="SETTLING")
    out = size_entry(price=D("29000"), sl_fraction=0.01, equity=D("10000"), rules=halted, stats=NONE, params=P)
    assert isinstance(out, SizeSkip) and out.reason == "symbol_not_trading"


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(list(SizingMode)),
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "SUSHIUSDT"]),
    equity=st.decimals(min_value=D("1"), max_value=D("10000000"), places=2),
    price=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2),
    sl=st.floats(min_value=0.0005, max_value=0.3),
    wins=st.integers(0, 50), losses=st.integers(0, 50),
    avg_win=st.floats(0.1, 5), avg_loss=st.floats(0.1, 5),
    market=st.booleans(),
)
def test_size_never_exceeds_configured_or_exchange_maximum(
    fixtures_dir: Path, mode: SizingMode, symbol: str, equity: Decimal, price: Decimal, sl: float,
    wins: int, losses: int, avg_win: float, avg_loss: float, market: bool,
) -> None:
    rules = _cached_rules(str(fixtures_dir / INFO))[symbol]
    params = replace(P, mode=mode, fixed_notional_usdt=D("250000"))
    out = size_entry(price=price, sl_fraction=sl, equity=equity, rules=rules,
                     stats=stats(wins, losses, avg_win, avg_loss), params=params, market=market)
    if isinstance(out, SizeSkip):
        return
    exchange_max = rules.market_max_qty if market else rules.max_qty
    assert out.notional <= equity * params.max_notional_fraction
    assert out.fraction <= params.max_fraction
    assert out.quantity <= exchange_max  # type: ignore[operator]
    assert rules.check(quantity=out.quantity, price=None, reference_price=price, market=market) == []
    assert out.notional == out.quantity * price


@functools.cache
def _cached_rules(path: str) -> dict[str, SymbolRules]:
    return rules_from_exchange_info(Path(path))


def test_extra_cap_from_risk_headroom(rules: dict[str, SymbolRules]) -> None:
    kw = dict(price=D("1800"), sl_fraction=0.001, equity=D("10000"), rules=rules["ETHUSDT"], stats=NONE,
              params=replace(P, mode=SizingMode.FIXED_RISK))
    capped = size_entry(**kw, max_notional=D("900"))  # type: ignore[arg-type]
    assert isinstance(capped, Size) and capped.quantity == D("0.5") and capped.capped
    none_left = size_entry(**kw, max_notional=D("0"))  # type: ignore[arg-type]
    assert isinstance(none_left, SizeSkip) and none_left.reason == "no_headroom"
    too_little = size_entry(**kw, max_notional=D("4"))  # type: ignore[arg-type]
    assert isinstance(too_little, SizeSkip) and too_little.reason == "below_min_notional"  # 5 USDT minimum


def test_fallback_and_minimum_are_different_rules() -> None:
    params = replace(P, min_fraction=D("0.02"), fallback_fraction=D("0.015"))
    assert kelly_fraction(stats(9, 0), params) == (D("0.015"), "fallback")
    assert kelly_fraction(stats(0, 12), params) == (D("0.02"), "kelly")
    assert kelly_fraction(stats(3, 7), params) == (D("0.02"), "kelly")
