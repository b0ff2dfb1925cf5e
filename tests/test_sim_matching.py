"""Matching engine rules and money invariants (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types import AlgoStatus, MarginType, OrderStatus, OrderType, PositionSide, Side, TimeInForce, WorkingType
from exchanges.sim.errors import SimError
from exchanges.sim.matching import EngineConfig, MatchingEngine
from exchanges.sim.records import AccountEvent, AlgoEvent, MarginCallEvent, OrderEvent
from exchanges.sim.rules import KNOWN

T0 = 1_700_000_000_000


def engine(price: str = "30000", **cfg: object) -> MatchingEngine:
    e = MatchingEngine([KNOWN["BTCUSDT"], KNOWN["ETHUSDT"]], EngineConfig(**cfg))  # type: ignore[arg-type]
    e.set_price("BTCUSDT", D(price), T0)
    e.set_price("ETHUSDT", D("2000"), T0)
    e.drain()
    return e


def market(e: MatchingEngine, side: Side, qty: str, **kw: object):
    return e.place_order(symbol="BTCUSDT", side=side, order_type=OrderType.MARKET, quantity=D(qty),
                         now_ms=T0, **kw)  # type: ignore[arg-type]


def code_of(fn, *a, **kw) -> int:
    with pytest.raises(SimError) as info:
        fn(*a, **kw)
    return info.value.code


def test_market_fill_with_slippage_fee_and_events() -> None:
    e = engine()
    o = market(e, Side.BUY, "0.010")
    assert o.status is OrderStatus.FILLED
    assert o.avg_price == D("30003.0")  # 30000 × (1 + 1 bps), rounded up to the tick
    pos = e.account.position("BTCUSDT")
    assert pos.qty == D("0.010") and pos.entry_price == D("30003.0")
    fee = D("0.010") * D("30003.0") * D("0.0005")
    assert e.account.wallet == D(10000) - fee
    kinds = [(type(ev).__name__, getattr(ev, "execution", None)) for ev in e.drain()]
    assert kinds[0][0] == "OrderEvent" and kinds[0][1].value == "NEW"
    assert kinds[1][1].value == "TRADE" and kinds[-1][0] == "AccountEvent"


def test_filters_and_codes() -> None:
    e = engine()
    place = e.place_order
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.STOP_MARKET, quantity=D("0.01"), now_ms=T0) == -4120
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("29000.051"), time_in_force=TimeInForce.GTC, now_ms=T0) == -1111
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("29000.15"), time_in_force=TimeInForce.GTC, now_ms=T0) == -4014
    assert code_of(place, symbol="ETHUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.0105"),
                   price=D("1900"), time_in_force=TimeInForce.GTC, now_ms=T0) == -1111
    assert code_of(market, e, Side.BUY, "0.0015") == -1111
    assert code_of(market, e, Side.BUY, "0.003") == -4164  # 90 USDT < 100
    assert code_of(market, e, Side.SELL, "0.010", reduce_only=True) == -2022
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("30000.0"), time_in_force=TimeInForce.GTX, now_ms=T0) == -5022
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("29000.0"), time_in_force=TimeInForce.FOK, now_ms=T0) == -5021
    assert code_of(market, e, Side.BUY, "0.010", client_order_id="bad id!") == -4015
    assert code_of(market, e, Side.BUY, "0.010", client_order_id="x" * 37) == -4015
    assert code_of(market, e, Side.BUY, "100.000") == -2019
    assert code_of(e.cancel_order, "BTCUSDT", now_ms=T0, order_id=123) == -2011
    assert code_of(e.get_order, "BTCUSDT", order_id=123) == -2013
    assert code_of(place, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("40000.0"), time_in_force=TimeInForce.GTC, now_ms=T0) == -4016
    assert e.open_orders() == [] and e.account.wallet == D(10000)  # rejections changed nothing


def test_duplicate_client_id_among_open_orders() -> None:
    e = engine()
    e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                  price=D("29000.0"), time_in_force=TimeInForce.GTC, client_order_id="dup-1", now_ms=T0)
    assert code_of(e.place_order, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT,
                   quantity=D("0.01"), price=D("29000.0"), time_in_force=TimeInForce.GTC,
                   client_order_id="dup-1", now_ms=T0) == -4116


def test_resting_limit_fills_as_maker_when_crossed_strictly() -> None:
    e = engine()
    o = e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                      price=D("29900.0"), time_in_force=TimeInForce.GTX, now_ms=T0)
    e.set_price("BTCUSDT", D("29900.0"), T0 + 1)  # touch only: pessimistic → no fill
    assert e.get_order("BTCUSDT", order_id=o.order_id).status is OrderStatus.NEW
    e.set_price("BTCUSDT", D("29899.9"), T0 + 2)
    filled = e.get_order("BTCUSDT", order_id=o.order_id)
    assert filled.status is OrderStatus.FILLED and filled.avg_price == D("29900.0")
    assert e.trades[-1].trade.maker and e.trades[-1].trade.commission == D("0.01") * D("29900.0") * D("0.0002")


def test_algo_lifecycle_close_position_and_wrong_endpoint_query() -> None:
    e = engine()
    market(e, Side.BUY, "0.010")
    a = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.STOP_MARKET, now_ms=T0,
                     trigger_price=D("29500.0"), close_position=True, working_type=WorkingType.MARK_PRICE)
    assert a.status is AlgoStatus.NEW
    assert code_of(e.get_order, "BTCUSDT", client_order_id=a.client_algo_id) == -2013
    assert code_of(e.place_algo, symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.STOP_MARKET,
                   now_ms=T0, trigger_price=D("30100.0"), close_position=True) == -2021
    e.drain()
    e.set_price("BTCUSDT", D("29400.0"), T0 + 10)
    algo_states = [ev.algo.status for ev in e.drain() if isinstance(ev, AlgoEvent)]
    assert algo_states == [AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED, AlgoStatus.FINISHED]
    done = e.get_algo(algo_id=a.algo_id)
    assert done.actual_order_id is not None and done.executed_qty == D("0.010")
    assert done.avg_price == D("29497.0")  # crossed within the step: trigger price − 1 bps
    assert e.account.position("BTCUSDT").qty == 0


def test_close_position_algo_expires_when_position_closed_by_other_means() -> None:
    e = engine()
    market(e, Side.BUY, "0.010")
    a = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.STOP_MARKET, now_ms=T0,
                     trigger_price=D("29000.0"), close_position=True)
    market(e, Side.SELL, "0.010", reduce_only=True)
    assert e.get_algo(algo_id=a.algo_id).status is AlgoStatus.EXPIRED


def test_reduce_only_algo_without_position_is_rejected_with_reason() -> None:
    e = engine()
    a = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.TAKE_PROFIT_MARKET, now_ms=T0,
                     trigger_price=D("30100.0"), quantity=D("0.010"), reduce_only=True)
    e.set_price("BTCUSDT", D("30200.0"), T0 + 1)
    got = e.get_algo(algo_id=a.algo_id)
    assert got.status is AlgoStatus.REJECTED and got.reason == "Reduce Only reject"


def test_trailing_stop_triggers_after_callback_from_the_high() -> None:
    e = engine()
    market(e, Side.BUY, "0.010")
    a = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.TRAILING_STOP_MARKET, now_ms=T0,
                     quantity=D("0.010"), reduce_only=True, activate_price=D("30300.0"), callback_rate=D("1"))
    e.drain()
    for i, p in enumerate(["30200.0", "30400.0", "31000.0", "30800.0"]):
        e.set_price("BTCUSDT", D(p), T0 + i + 1)
    assert e.get_algo(algo_id=a.algo_id).status is AlgoStatus.NEW
    activated = [ev.algo for ev in e.drain() if isinstance(ev, AlgoEvent)]
    assert [(x.status, x.activated) for x in activated] == [(AlgoStatus.NEW, True)]  # second NEW, ia=true
    e.set_price("BTCUSDT", D("30680.0"), T0 + 9)  # 31000 × 0.99 = 30690
    assert e.get_algo(algo_id=a.algo_id).status is AlgoStatus.FINISHED
    assert e.account.position("BTCUSDT").qty == 0


def test_funding_is_booked_and_long_pays_positive_rate() -> None:
    e = engine()
    market(e, Side.BUY, "0.010")
    e.drain()
    paid = e.apply_funding("BTCUSDT", D("0.0001"), T0 + 5)
    assert paid == -D("0.010") * D("30000") * D("0.0001")
    ev = e.drain()
    assert isinstance(ev[0], AccountEvent) and ev[0].reason == "FUNDING_FEE" and ev[0].positions == ()
    assert e.account.ledger[-1].income_type == "FUNDING_FEE"


def test_split_fills_fault_produces_partials() -> None:
    e = engine()
    e.split_fills = 3
    market(e, Side.BUY, "0.010")
    trades = [ev for ev in e.drain() if isinstance(ev, OrderEvent) and ev.trade]
    assert [t.order.status.value for t in trades] == ["PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
    assert sum(t.trade.qty for t in trades) == D("0.010")


def test_liquidation_closes_cross_position_at_mark() -> None:
    e = engine(balance=D(200))
    e.set_leverage("BTCUSDT", 100, T0)
    market(e, Side.BUY, "0.060")  # 1800 USDT notional on 200 USDT
    e.drain()
    e.set_price("BTCUSDT", D("26950.0"), T0 + 1)  # maint 6.5 < 80 % of equity 15.9: no call
    e.set_price("BTCUSDT", D("26815.0"), T0 + 1)  # maint 6.4 ≥ 80 % of equity 7.8: MARGIN_CALL
    calls = [ev for ev in e.drain() if isinstance(ev, MarginCallEvent)]
    assert len(calls) == 1 and calls[0].positions[0].symbol == "BTCUSDT"
    e.set_price("BTCUSDT", D("26814.0"), T0 + 1)
    assert not [ev for ev in e.drain() if isinstance(ev, MarginCallEvent)]  # once, not on every tick
    e.set_price("BTCUSDT", D("26700.0"), T0 + 1)  # equity 199.1 − 198.2 ≤ maint 6.4
    assert e.account.position("BTCUSDT").qty == 0
    liq = [ev for ev in e.drain() if isinstance(ev, OrderEvent) and ev.execution.value == "CALCULATED"]
    assert liq and liq[0].order.client_order_id.startswith("autoclose-")


# ---------------------------------------------------------------- properties

ops = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "buy_ro", "sell_ro", "sl", "tp", "limit", "price", "funding"]),
        st.integers(min_value=1, max_value=40),
        st.integers(min_value=-300, max_value=300),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(ops)
def test_invariants_under_random_order_flow(seq: list[tuple[str, int, int]]) -> None:
    """Wallet == initial + ledger; reduceOnly never increases exposure; a triggered
    closePosition never leaves a reversed position."""
    e = engine()
    now = T0
    for kind, n, dp in seq:
        now += 1000
        qty = D(n) * D("0.001") * 5
        price = e.last_price("BTCUSDT")
        pos_before = e.account.position("BTCUSDT").qty
        try:
            if kind in ("buy", "sell", "buy_ro", "sell_ro"):
                side = Side.BUY if kind.startswith("buy") else Side.SELL
                market(e, side, str(qty), reduce_only=kind.endswith("_ro"))
                if kind.endswith("_ro"):
                    assert abs(e.account.position("BTCUSDT").qty) <= abs(pos_before)
            elif kind in ("sl", "tp") and pos_before:
                side = Side.SELL if pos_before > 0 else Side.BUY
                sign = -1 if (kind == "sl") == (pos_before > 0) else 1
                trig = (price * (1 + D(sign) * D(abs(dp) + 5) / 10000)).quantize(D("0.1"))
                e.place_algo(symbol="BTCUSDT", side=side, order_type=OrderType.STOP_MARKET if kind == "sl"
                             else OrderType.TAKE_PROFIT_MARKET, now_ms=now, trigger_price=trig, close_position=True)
            elif kind == "limit":
                side = Side.BUY if dp < 0 else Side.SELL
                lp = (price * (1 + D(dp) / 10000)).quantize(D("0.1"))
                e.place_order(symbol="BTCUSDT", side=side, order_type=OrderType.LIMIT, quantity=qty, price=lp,
                              time_in_force=TimeInForce.GTC, reduce_only=n % 2 == 0, now_ms=now)
            elif kind == "price":
                e.drain()
                e.set_price("BTCUSDT", (price * (1 + D(dp) / 10000)).quantize(D("0.1")), now)
                closer: Side | None = None
                for ev in e.drain():
                    if isinstance(ev, OrderEvent) and ev.trade and (ev.order.close_position or ev.order.reduce_only):
                        closer = ev.order.side
                    elif isinstance(ev, AccountEvent) and closer is not None:
                        # A SELL that only reduces can never leave a short, a BUY never a long.
                        qty = next(p.qty for p in ev.positions if p.symbol == "BTCUSDT")
                        assert qty >= 0 if closer is Side.SELL else qty <= 0
                        closer = None
            else:
                e.apply_funding("BTCUSDT", D(dp) / 1_000_000, now)
        except SimError:
            pass
        assert e.account.wallet == D(10000) + e.account.ledger_total()
        fills = sum((t.trade.realized_pnl - t.trade.commission for t in e.trades), D(0))
        funding = sum((x.amount for x in e.account.ledger if x.income_type == "FUNDING_FEE"), D(0))
        assert e.account.wallet - D(10000) == fills + funding


def test_gtd_orders_expire_at_their_date_and_need_a_valid_one() -> None:
    e = engine()
    assert code_of(e.place_order, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("29000.0"), time_in_force=TimeInForce.GTD, now_ms=T0) == -1102
    assert code_of(e.place_order, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                   price=D("29000.0"), time_in_force=TimeInForce.GTD, good_till_ms=T0 + 60_000, now_ms=T0) == -1130
    o = e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                      price=D("29000.0"), time_in_force=TimeInForce.GTD, good_till_ms=T0 + 700_500, now_ms=T0)
    e.set_price("BTCUSDT", D("30001.0"), T0 + 699_999)
    assert e.get_order("BTCUSDT", order_id=o.order_id).status is OrderStatus.NEW
    e.set_price("BTCUSDT", D("30002.0"), T0 + 700_000)
    gone = e.get_order("BTCUSDT", order_id=o.order_id)
    assert gone.status is OrderStatus.EXPIRED and gone.expiry_reason == "6"


def test_hedge_mode_is_refused_with_binance_codes() -> None:
    e = engine()
    assert code_of(e.set_dual_side, False) == -4059
    assert code_of(market, e, Side.BUY, "0.010", position_side=PositionSide.LONG) == -4061
    market(e, Side.BUY, "0.010")
    assert code_of(e.set_dual_side, True) == -4068
    market(e, Side.SELL, "0.010", reduce_only=True)
    e.set_dual_side(True)
    assert code_of(market, e, Side.BUY, "0.010") == -4061  # only one-way mode is simulated


def test_max_open_orders_per_symbol() -> None:
    e = engine()
    for i in range(200):
        e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.004"),
                      price=D("29000.0") - i, time_in_force=TimeInForce.GTC, now_ms=T0)
    assert code_of(e.place_order, symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.004"),
                   price=D("28000.0"), time_in_force=TimeInForce.GTC, now_ms=T0) == -2025
    assert len(e.open_orders("BTCUSDT")) == 200


def test_isolated_position_margin_funding_and_liquidation() -> None:
    e = engine()
    e.set_margin_type("BTCUSDT", MarginType.ISOLATED, T0)
    assert code_of(e.set_margin_type, "BTCUSDT", MarginType.ISOLATED, T0) == -4046
    e.set_leverage("BTCUSDT", 50, T0)
    market(e, Side.BUY, "0.100")
    pos = e.account.position("BTCUSDT")
    assert pos.isolated_wallet == D("0.100") * D("30003.0") / 50
    assert code_of(e.set_margin_type, "BTCUSDT", MarginType.CROSSED, T0) == -4048
    e.drain()
    e.apply_funding("BTCUSDT", D("0.0001"), T0 + 1)
    funding = [ev for ev in e.drain() if isinstance(ev, AccountEvent)][0]
    assert [p.symbol for p in funding.positions] == ["BTCUSDT"]  # isolated: B and that position
    e.set_price("BTCUSDT", D("29500.0"), T0 + 2)  # −50.3 on a 60 USDT isolated wallet: maint 11.8 hit
    assert e.account.position("BTCUSDT").qty == 0
    assert e.account.wallet == D(10000) + e.account.ledger_total()


def test_stop_limit_child_rests_then_finishes_the_algo() -> None:
    e = engine()
    market(e, Side.BUY, "0.010")
    a = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.STOP, now_ms=T0, quantity=D("0.010"),
                     trigger_price=D("29900.0"), price=D("29950.0"), reduce_only=True)
    e.set_price("BTCUSDT", D("29899.0"), T0 + 1)  # triggers; the SELL limit at 29950 is below the market? no: above
    got = e.get_algo(algo_id=a.algo_id)
    assert got.status is AlgoStatus.TRIGGERED and got.actual_order_id is not None
    child = e.get_order("BTCUSDT", order_id=got.actual_order_id)
    assert child.status is OrderStatus.NEW and child.client_order_id == a.client_algo_id
    e.set_price("BTCUSDT", D("29950.1"), T0 + 2)  # the market comes back through the limit
    assert e.get_algo(algo_id=a.algo_id).status is AlgoStatus.FINISHED
    assert e.get_order("BTCUSDT", order_id=got.actual_order_id).avg_price == D("29950.0")
    assert e.account.position("BTCUSDT").qty == 0


def test_history_retention_like_binance() -> None:
    e = engine()
    o = e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.01"),
                      price=D("29000.0"), time_in_force=TimeInForce.GTC, now_ms=T0)
    e.cancel_order("BTCUSDT", now_ms=T0, order_id=o.order_id)
    filled = market(e, Side.BUY, "0.010")
    e.prune(T0 + 3 * 86_400_000 + 1)
    assert code_of(e.get_order, "BTCUSDT", order_id=o.order_id) == -2013  # canceled, unfilled, > 3 days
    assert e.get_order("BTCUSDT", order_id=filled.order_id).status is OrderStatus.FILLED
    e.prune(T0 + 91 * 86_400_000)
    assert e.trades == [] and e.account.ledger == []
    assert e.account.wallet == D(10000) + e.account.ledger_total()  # the folded sum still balances


@pytest.mark.parametrize(("margin", "side"), [(MarginType.ISOLATED, Side.BUY), (MarginType.ISOLATED, Side.SELL),
                                             (MarginType.CROSSED, Side.BUY), (MarginType.CROSSED, Side.SELL)])
def test_reported_liquidation_price_is_where_liquidation_happens(margin: MarginType, side: Side) -> None:
    e = engine(balance=D(500))
    if margin is MarginType.ISOLATED:
        e.set_margin_type("BTCUSDT", margin, T0)
    e.set_leverage("BTCUSDT", 50, T0)
    market(e, side, "0.100")
    liq = e.position_state("BTCUSDT").liquidation_price
    assert liq > 0
    step = D("-1.0") if side is Side.BUY else D("1.0")
    e.set_price("BTCUSDT", liq - 3 * step, T0 + 1)  # three ticks before: still alive
    assert e.account.position("BTCUSDT").qty != 0
    e.set_price("BTCUSDT", liq + step, T0 + 2)  # one dollar past it: liquidated
    assert e.account.position("BTCUSDT").qty == 0
