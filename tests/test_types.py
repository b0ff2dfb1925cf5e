"""Kernel records refuse impossible orders; enums carry the Binance facts they encode."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    Timeframe,
)

D = Decimal


def test_conditional_types_are_refused_as_regular_orders() -> None:
    for kind in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET, OrderType.STOP, OrderType.TRAILING_STOP_MARKET):
        assert kind.is_conditional
        with pytest.raises(ValueError, match="AlgoOrderRequest"):
            OrderRequest("BTCUSDT", Side.SELL, kind, D("1"), "c1")


def test_order_request_rules() -> None:
    with pytest.raises(ValueError):
        OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("1"), "c1")  # no price
    with pytest.raises(ValueError):
        OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("1"), "c1", price=D("1"))
    with pytest.raises(ValueError):
        OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0"), "c1")
    ok = OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("1"), "c1", price=D("100"), time_in_force=TimeInForce.GTX)
    assert ok.reduce_only is False


def test_algo_request_rules() -> None:
    sl = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "sl1", trigger_price=D("90"), close_position=True)
    assert sl.quantity is None
    with pytest.raises(ValueError, match="closePosition"):
        AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "x", trigger_price=D("90"), close_position=True, quantity=D("1"))
    with pytest.raises(ValueError, match="closePosition"):
        AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP, "x", trigger_price=D("90"), price=D("89"), close_position=True)
    with pytest.raises(ValueError, match="trigger_price"):
        AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "x", quantity=D("1"))
    with pytest.raises(ValueError, match="callback_rate"):
        AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.TRAILING_STOP_MARKET, "x", quantity=D("1"))
    with pytest.raises(ValueError, match="not conditional"):
        AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, "x", quantity=D("1"))


def test_status_finality() -> None:
    assert {s for s in OrderStatus if s.is_open} == {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}
    assert {s for s in AlgoStatus if s.is_final} == {
        AlgoStatus.FINISHED, AlgoStatus.CANCELED, AlgoStatus.EXPIRED, AlgoStatus.REJECTED,
    }


def test_position_side_and_timeframes() -> None:
    assert Position("X", D("-2"), D("10")).side is Side.SELL
    assert Position("X", D("0"), D("0")).is_flat
    assert Timeframe.H4.ms == 4 * 3_600_000
    assert Timeframe.M15.bucket_start(1_689_679_000_000) % Timeframe.M15.ms == 0
    with pytest.raises(ValueError, match="allowed"):
        Timeframe.parse("7m")
    assert Side.BUY.opposite is Side.SELL and Side.SELL.sign == -1
