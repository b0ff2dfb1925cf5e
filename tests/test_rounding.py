"""Property tests: SymbolRules rounding and filter checks (Decimal in, Decimal out)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types import Rounding, Side, SymbolRules

TICKS = [Decimal("0.1"), Decimal("0.01"), Decimal("0.00001"), Decimal("0.5"), Decimal("10")]
STEPS = [Decimal("0.001"), Decimal("1"), Decimal("0.1"), Decimal("100"), Decimal("0.00000001")]

prices = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("1000000"), places=8)
quantities = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=9)


def make_rules(tick: Decimal, step: Decimal, **kw: object) -> SymbolRules:
    base = dict(
        symbol="TESTUSDT", tick_size=tick, step_size=step, min_qty=step, max_qty=Decimal("50000"),
        min_price=tick, max_price=Decimal("900000"), min_notional=Decimal("5"),
        multiplier_up=Decimal("1.05"), multiplier_down=Decimal("0.95"),
    )
    base.update(kw)
    return SymbolRules(**base)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.sampled_from(TICKS), prices, st.sampled_from(list(Rounding)))
def test_rounded_price_is_on_tick_and_within_bounds(tick: Decimal, price: Decimal, rounding: Rounding) -> None:
    rules = make_rules(tick, Decimal("0.001"))
    out = rules.round_price(price, rounding)
    assert isinstance(out, Decimal)
    assert out % tick == 0
    assert rules.min_price <= out <= rules.max_price
    if rules.min_price <= price <= rules.max_price:
        assert abs(out - price) < tick
        if rounding is Rounding.DOWN:
            assert out <= price
        if rounding is Rounding.UP:
            assert out >= price


@settings(max_examples=300)
@given(st.sampled_from(STEPS), quantities)
def test_rounded_qty_is_on_step_and_never_above_request(step: Decimal, qty: Decimal) -> None:
    rules = make_rules(Decimal("0.01"), step)
    out = rules.round_qty(qty)
    assert isinstance(out, Decimal)
    assert out % step == 0
    assert out <= qty
    assert out <= rules.max_qty
    assert qty - out < step or out == (rules.max_qty // step) * step


@settings(max_examples=200)
@given(st.sampled_from(STEPS), quantities, prices)
def test_min_notional_check_matches_rule(step: Decimal, qty: Decimal, price: Decimal) -> None:
    rules = make_rules(Decimal("0.00001"), step, min_qty=Decimal(0), max_qty=Decimal(0), max_price=Decimal(0))
    q = rules.round_qty(qty)
    p = rules.round_price(price, Rounding.NEAREST)
    failures = rules.check(quantity=q, price=p)
    names = {f.filter for f in failures}
    if q > 0:
        assert ("MIN_NOTIONAL" in names) == (q * p < rules.min_notional)
        assert "MIN_NOTIONAL" not in {f.filter for f in rules.check(quantity=q, price=p, reduce_only=True)}
    else:
        assert "LOT_SIZE" in names


@given(prices)
def test_min_qty_for_notional_is_smallest_sufficient(price: Decimal) -> None:
    rules = make_rules(Decimal("0.00001"), Decimal("0.001"))
    q = rules.min_qty_for_notional(price)
    assert q % rules.step_size == 0
    assert q * price >= rules.min_notional
    assert q >= rules.min_qty
    smaller = q - rules.step_size
    assert smaller < rules.min_qty or smaller * price < rules.min_notional


def test_check_names_each_violated_filter_with_binance_code() -> None:
    rules = make_rules(Decimal("0.1"), Decimal("0.001"))
    by_filter = {f.filter: f.code for f in rules.check(quantity=Decimal("0.0015"), price=Decimal("100.05"))}
    assert by_filter["LOT_SIZE"] == -4023
    assert by_filter["PRICE_FILTER"] == -4014
    assert by_filter["MIN_NOTIONAL"] == -4164
    percent = rules.check(quantity=Decimal("1"), price=Decimal("120"), reference_price=Decimal("100"), side=Side.BUY)
    assert [f.code for f in percent] == [-4131]
    assert rules.check(quantity=Decimal("1"), price=Decimal("104.9"), reference_price=Decimal("100")) == []


def test_floats_are_refused() -> None:
    rules = make_rules(Decimal("0.1"), Decimal("0.001"))
    with pytest.raises(TypeError):
        rules.round_price(100.05, Rounding.DOWN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rules.round_qty(0.5)  # type: ignore[arg-type]


def test_rounding_directions_for_sides() -> None:
    rules = make_rules(Decimal("0.1"), Decimal("0.001"))
    assert rules.round_price(Decimal("100.07"), Rounding.passive(Side.BUY)) == Decimal("100.0")
    assert rules.round_price(Decimal("100.03"), Rounding.passive(Side.SELL)) == Decimal("100.1")
    # a long's stop is a SELL below the market: rounding away from the market goes down
    assert rules.round_price(Decimal("95.07"), Rounding.away_from_market(Side.SELL)) == Decimal("95.0")
    assert rules.round_price(Decimal("104.01"), Rounding.away_from_market(Side.BUY)) == Decimal("104.1")


def test_market_lot_size_is_used_for_market_orders() -> None:
    rules = make_rules(
        Decimal("0.1"), Decimal("0.001"), market_step_size=Decimal("0.01"),
        market_max_qty=Decimal("120"), market_min_qty=Decimal("0.01"),
    )
    assert rules.round_qty(Decimal("500.019"), market=True) == Decimal("120.00")
    assert rules.round_qty(Decimal("500.019")) == Decimal("500.019")
    codes = {f.code for f in rules.check(quantity=Decimal("0.005"), price=None, reference_price=Decimal("30000"), market=True)}
    assert -4004 in codes and -4023 in codes
