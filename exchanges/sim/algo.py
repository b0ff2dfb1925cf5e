"""Trigger rules of conditional orders (pure functions, Binance's documented semantics).

* STOP / STOP_MARKET: BUY triggers when price ≥ triggerPrice, SELL when price ≤ triggerPrice.
* TAKE_PROFIT / TAKE_PROFIT_MARKET: BUY when price ≤ triggerPrice, SELL when price ≥.
* TRAILING_STOP_MARKET: active once price reaches ``activatePrice`` (at once when absent);
  then a SELL triggers when price falls ``callbackRate`` % below the highest price since
  activation, a BUY when price rises that much above the lowest.
The price is the mark price for ``workingType=MARK_PRICE``, the last price otherwise.
"""

from __future__ import annotations

from decimal import Decimal

from core.types import OrderType, Side, WorkingType
from exchanges.sim.records import SimAlgo

HUNDRED = Decimal(100)


def reference(algo: SimAlgo, last: Decimal, mark: Decimal) -> Decimal:
    return mark if algo.working_type is WorkingType.MARK_PRICE else last


def condition_met(order_type: OrderType, side: Side, trigger: Decimal, price: Decimal) -> bool:
    """Would a STOP/TAKE_PROFIT family order with this trigger fire at ``price``?"""
    if order_type.is_take_profit:
        return price <= trigger if side is Side.BUY else price >= trigger
    return price >= trigger if side is Side.BUY else price <= trigger


def would_trigger_now(algo: SimAlgo, price: Decimal) -> bool:
    """-2021 check at placement."""
    if algo.type is OrderType.TRAILING_STOP_MARKET:
        if algo.activate_price is None:
            return False
        # Binance: BUY activatePrice must be below the market, SELL above it.
        return algo.activate_price >= price if algo.side is Side.BUY else algo.activate_price <= price
    return condition_met(algo.type, algo.side, algo.trigger_price, price)


def step(algo: SimAlgo, price: Decimal) -> bool:
    """Advance ``algo`` with a new reference price; True when it triggers now."""
    if algo.type is not OrderType.TRAILING_STOP_MARKET:
        return condition_met(algo.type, algo.side, algo.trigger_price, price)
    if not algo.activated:
        reached = (algo.activate_price is None
                   or (price <= algo.activate_price if algo.side is Side.BUY else price >= algo.activate_price))
        if not reached:
            return False
        algo.activated = True
        algo.extreme = price
    assert algo.callback_rate is not None
    rate = algo.callback_rate / HUNDRED
    if algo.side is Side.SELL:
        algo.extreme = max(algo.extreme, price)
        algo.trigger_price = algo.extreme * (1 - rate)
        return price <= algo.trigger_price
    algo.extreme = min(algo.extreme, price)
    algo.trigger_price = algo.extreme * (1 + rate)
    return price >= algo.trigger_price
