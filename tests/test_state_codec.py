"""state.codec: exact Decimal, enums by name, kernel records round-trip, clear errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import StateError
from core.events import AccountUpdate, CandleClosed, OrderUpdate
from core.types import (
    AlgoOrderRequest,
    Balance,
    Candle,
    ExecutionType,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    Timeframe,
)
from state import codec

D = Decimal


def _fill() -> Fill:
    return Fill("BTCUSDT", 8886774, 12345678, "cX", Side.BUY, D("7100.50"), D("0.001"), D("0.01000000"), "USDT",
                D("12.34"), True, 1568879465651)


def test_decimal_is_written_as_its_exact_string_and_enum_by_name() -> None:
    candle = Candle("BTCUSDT", Timeframe.M5, 0, D("1.10"), D("2.000"), D("0.5"), D("1E+3"), D("0"))
    data = codec.encode(candle)
    assert data["timeframe"] == "M5"  # the name, not the wire value "5m"
    assert data["open"] == "1.10" and data["close"] == "1E+3"
    back = codec.decode(Candle, codec.loads(codec.dumps(candle)))
    assert back == candle
    assert str(back.open) == "1.10"  # trailing zeros (the venue's precision) survive


def test_nested_kernel_records_round_trip() -> None:
    order = Order("BTCUSDT", 1, "c1", Side.SELL, OrderType.LIMIT, OrderStatus.PARTIALLY_FILLED, D("2"), D("100.1"),
                  executed_qty=D("1"), time_in_force=TimeInForce.GTX, orig_type=OrderType.LIMIT)
    update = OrderUpdate(order, ExecutionType.TRADE, 5, _fill(), "0")
    account = AccountUpdate("FUNDING_FEE", (Balance("USDT", D("10.5"), D("9")),),
                            (Position("BTCUSDT", D("-0.5"), D("100")),), 7, 8, "BTCUSDT", (("USDT", D("-0.0123")),))
    for record in (update, account, CandleClosed(Candle("ETHUSDT", Timeframe.H1, 3, D(1), D(2), D(0), D(1), D(9)))):
        assert codec.decode(type(record), codec.loads(codec.dumps(record))) == record


def test_tagged_records_carry_their_type() -> None:
    regular = OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.01"), "cE", D("100"), TimeInForce.GTX)
    algo = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "cS", trigger_price=D("90"),
                            close_position=True)
    for record in (regular, algo):
        tagged = codec.encode_tagged(record)
        assert tagged["type"] == type(record).__name__
        assert codec.decode_tagged(codec.loads(codec.dumps_plain(tagged))) == record


def test_bad_data_names_the_path() -> None:
    data = codec.encode(_fill())
    data["price"] = 7100.5  # a float where money belongs
    with pytest.raises(StateError, match=r"\$\.price.*string"):
        codec.decode(Fill, data)
    data = codec.encode(_fill())
    data["side"] = "SIDEWAYS"
    with pytest.raises(StateError, match=r"\$\.side.*Side"):
        codec.decode(Fill, data)
    data = codec.encode(_fill())
    data["surprise"] = 1
    with pytest.raises(StateError, match="unknown fields"):
        codec.decode(Fill, data)
    data = codec.encode(_fill())
    del data["trade_id"]
    with pytest.raises(StateError, match="trade_id"):
        codec.decode(Fill, data)


def test_record_invariants_are_checked_on_decode() -> None:
    data = codec.encode(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("1"), "c"))
    data["quantity"] = "-1"
    with pytest.raises(StateError, match="quantity must be positive"):
        codec.decode(OrderRequest, data)


def test_non_finite_and_unknown_values_are_refused() -> None:
    with pytest.raises(StateError, match="non-finite"):
        codec.encode({"x": D("NaN")})
    with pytest.raises(StateError, match="non-finite"):
        codec.encode({"x": float("inf")})
    with pytest.raises(StateError, match="cannot encode"):
        codec.encode({"x": object()})
    with pytest.raises(StateError, match="not a registered"):
        codec.encode_tagged(_Unregistered())
    with pytest.raises(StateError, match="malformed JSON"):
        codec.loads(b'{"a": ')


class _Unregistered:
    pass


def test_schema_version_check() -> None:
    assert codec.check_schema_version(codec.SCHEMA_VERSION, "x") == codec.SCHEMA_VERSION
    with pytest.raises(StateError, match="newer than this build"):
        codec.check_schema_version(codec.SCHEMA_VERSION + 1, "snapshot f")
    for bad in (0, "1", True, None):
        with pytest.raises(StateError, match="invalid schema_version"):
            codec.check_schema_version(bad, "x")


def test_mapping_keys_and_containers() -> None:
    doc = {Side.BUY: [D("1.5"), (1, "a")], 7: {"nested": frozenset({2, 1})}}
    assert codec.encode(doc) == {"BUY": ["1.5", [1, "a"]], "7": {"nested": [1, 2]}}
    assert codec.decode(dict[Side, list[Decimal]], {"SELL": ["0.1", "2"]}) == {Side.SELL: [D("0.1"), D(2)]}
    assert codec.decode(tuple[str, Decimal], ["USDT", "1"]) == ("USDT", D(1))


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_round_trips_exactly(value: Decimal) -> None:
    back = codec.decode(Decimal, codec.loads(codec.dumps(value)))
    assert back == value and str(back) == str(value)
