"""Risk gate: every check and rejection reason, state transitions, persistence, and a property:
a HALTED gate never lets an entry through."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import RiskSettings
from core.clock import FakeClock
from core.metrics import RISK_REJECTIONS, TRADING_STATE
from core.risk import Condition, EntryIntent, Exposure, OrderKind, RiskGate, RiskParams
from core.types import Candle, Side, Timeframe, TradingState

D = Decimal
T0 = 1_689_678_780_000  # 2023-07-18 11:13 UTC
P = RiskParams.from_settings(RiskSettings())  # 5 positions, 5 000/symbol, 20 000 gross, 3×, 5 %, 4 losses
EQUITY = D("10000")


def candle(symbol: str, open_ms: int, tf: Timeframe = Timeframe.M1) -> Candle:
    return Candle(symbol, tf, open_ms, D(1), D(1), D(1), D(1), D(1))


def make_gate(params: RiskParams = P, now_ms: int = T0 + 60_000, **kw: object) -> tuple[RiskGate, FakeClock]:
    clock = FakeClock(now_ms)
    gate = RiskGate(params, clock, allowlist=["BTCUSDT", "ETHUSDT", "SOLUSDT"], start_equity=EQUITY, **kw)  # type: ignore[arg-type]
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        gate.on_candle(candle(sym, now_ms - 60_000))  # fresh data: the bar that just closed
    return gate, clock


BUY = EntryIntent("BTCUSDT", Side.BUY, D("1000"))
FLAT = Exposure(EQUITY)


def losses(n: int) -> Callable[[RiskGate, FakeClock], None]:
    def apply(gate: RiskGate, _: FakeClock) -> None:
        for _ in range(n):
            gate.on_trade_closed(D("-10"))
    return apply


def orders(n: int) -> Callable[[RiskGate, FakeClock], None]:
    def apply(gate: RiskGate, _: FakeClock) -> None:
        for _ in range(n):
            gate.on_order_sent()
    return apply


def nothing(gate: RiskGate, clock: FakeClock) -> None:
    return None


# id, setup(gate, clock), intent, exposure, expected reason ("" = allowed)
CASES = [
    ("clean entry passes", nothing, BUY, FLAT, ""),
    ("outside the allowlist", nothing, EntryIntent("DOGEUSDT", Side.BUY, D("100")), FLAT, "not_allowlisted"),
    ("stale: three intervals without a closed candle", lambda g, c: c.set_ms(T0 + 60_000 + 120_001), BUY, FLAT,
     "stale_data"),
    ("fresh at exactly two intervals", lambda g, c: c.set_ms(T0 + 60_000 + 120_000), BUY, FLAT, ""),
    ("three losses: no cooldown yet", losses(3), BUY, FLAT, ""),
    ("four losses in a row: cooldown", losses(4), BUY, FLAT, "loss_cooldown"),
    ("a win resets the count", lambda g, c: (losses(3)(g, c), g.on_trade_closed(D("5")), losses(3)(g, c)),
     BUY, FLAT, ""),
    ("60 orders in the last minute", orders(60), BUY, FLAT, "order_rate"),
    ("59 orders in the last minute", orders(59), BUY, FLAT, ""),
    ("one bracket per symbol", nothing, BUY, Exposure(EQUITY, brackets=frozenset({"BTCUSDT"})), "bracket_open"),
    ("an unbracketed position counts too", nothing, BUY, Exposure(EQUITY, {"BTCUSDT": D("10")}), "bracket_open"),
    ("max concurrent positions", nothing, BUY,
     Exposure(EQUITY, brackets=frozenset({"A1", "A2", "A3", "A4", "A5"})), "max_positions"),
    ("max notional per symbol", nothing, EntryIntent("BTCUSDT", Side.SELL, D("5000.01")), FLAT, "max_notional_symbol"),
    ("max gross exposure", nothing, BUY,
     Exposure(D("100000"), {"ETHUSDT": D("4000.01"), "A": D("5000"), "B": D("5000"), "C": D("5000")}),
     "max_gross_exposure"),
    ("gross exposure exactly at the limit", nothing, BUY,
     Exposure(D("100000"), {"ETHUSDT": D("4000"), "A": D("5000"), "B": D("5000"), "C": D("5000")}), ""),
    ("gross leverage: 19 000 notional on 5 000 equity > 3×", nothing, BUY,
     Exposure(D("5000"), {"ETHUSDT": D("4500"), "A": D("4500"), "B": D("4500"), "C": D("-4500")}), "max_gross_leverage"),
    ("shorts count at full notional", nothing, BUY,
     Exposure(D("5000"), {"ETHUSDT": D("-14001")}), "max_gross_leverage"),
    ("no equity", nothing, BUY, Exposure(D("0")), "no_equity"),
    ("daily loss limit → halted", lambda g, c: g.on_realized(D("-500")), BUY, FLAT, "halted"),
    ("unrealized counts toward the daily loss", lambda g, c: (g.on_realized(D("-300")), g.set_unrealized(D("-200"))),
     BUY, FLAT, "halted"),
    ("just above the daily loss limit", lambda g, c: (g.on_realized(D("-300")), g.set_unrealized(D("-199.99"))),
     BUY, FLAT, ""),
    ("manual halt", lambda g, c: g.halt(), BUY, FLAT, "halted"),
    ("breaker open → reducing", lambda g, c: g.set_breaker("orders", True), BUY, FLAT, "reducing"),
    ("breaker closed again", lambda g, c: (g.set_breaker("orders", True), g.set_breaker("orders", False)),
     BUY, FLAT, ""),
    ("rate-limit ban → reducing", lambda g, c: g.set_banned(T0 + 600_000), BUY, FLAT, "reducing"),
]


@pytest.mark.parametrize(("setup", "intent", "exposure", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_entry_checks(setup: Callable[[RiskGate, FakeClock], object], intent: EntryIntent, exposure: Exposure,
                      expected: str) -> None:
    gate, clock = make_gate()
    setup(gate, clock)
    before = RISK_REJECTIONS.labels(reason=expected or "none")._value.get()
    verdict = gate.check_entry(intent, exposure)
    assert (verdict.reason if not verdict.allowed else "") == expected, verdict
    if expected:
        assert gate.rejection_counts[expected] == 1
        assert RISK_REJECTIONS.labels(reason=expected)._value.get() == before + 1


def test_no_candle_yet_is_stale() -> None:
    gate = RiskGate(P, FakeClock(T0), allowlist=["BTCUSDT"], start_equity=EQUITY)
    verdict = gate.check_entry(BUY, FLAT)
    assert (verdict.reason, verdict.detail) == ("stale_data", "no candle yet")
    gate.on_candle(candle("BTCUSDT", T0 - 60_000, Timeframe.M5))  # another timeframe: not the gate's
    assert gate.check_entry(BUY, FLAT).reason == "stale_data"
    gate.on_candle(candle("BTCUSDT", T0 - 60_000))
    assert gate.check_entry(BUY, FLAT).allowed


def test_universe_restricts_entries() -> None:
    class Fixed:
        selected = frozenset({"ETHUSDT"})
    gate, _ = make_gate(universe=Fixed())
    assert gate.check_entry(BUY, FLAT).reason == "outside_universe"
    assert gate.check_entry(replace(BUY, symbol="ETHUSDT"), FLAT).allowed


def test_states_allow_exits_always() -> None:
    gate, clock = make_gate()
    assert gate.state is TradingState.ACTIVE and gate.allows(OrderKind.ENTRY)
    gate.set_breaker("orders", True)
    assert gate.state is TradingState.REDUCING and TRADING_STATE._value.get() == 1
    gate.on_realized(D("-600"))
    assert gate.state is TradingState.HALTED and TRADING_STATE._value.get() == 2
    assert gate.conditions == {Condition.BREAKER_OPEN, Condition.DAILY_LOSS}
    for kind in (OrderKind.EXIT, OrderKind.PROTECT, OrderKind.CANCEL):
        assert gate.allows(kind)
    assert not gate.allows(OrderKind.ENTRY)
    gate.set_breaker("orders", False)
    assert gate.state is TradingState.HALTED  # the daily loss latches in session mode
    clock.set_ms(T0 + 3 * 86_400_000)
    assert gate.state is TradingState.HALTED


def test_ban_and_cooldown_expire_with_the_clock() -> None:
    gate, clock = make_gate()
    gate.set_banned(T0 + 120_000)
    losses(4)(gate, clock)
    assert gate.state is TradingState.REDUCING
    clock.set_ms(T0 + 120_000)
    gate.on_candle(candle("BTCUSDT", T0 + 60_000))
    assert gate.state is TradingState.ACTIVE
    assert gate.check_entry(BUY, FLAT).reason == "loss_cooldown"
    clock.set_ms(T0 + 60_000 + 900_000)
    gate.on_candle(candle("BTCUSDT", T0 + 60_000 + 840_000))
    assert gate.check_entry(BUY, FLAT).allowed


def test_order_budget_is_a_sliding_minute() -> None:
    gate, clock = make_gate()
    orders(60)(gate, clock)
    assert gate.check_entry(BUY, FLAT).reason == "order_rate"
    clock.set_ms(clock.now_ms() + 60_000)
    gate.on_candle(candle("BTCUSDT", clock.now_ms() - 60_000))
    assert gate.check_entry(BUY, FLAT).allowed


def test_utc_midnight_resets_the_daily_loss() -> None:
    params = replace(P, daily_reset="utc_midnight")
    midnight = T0 - T0 % 86_400_000 + 86_400_000
    gate, clock = make_gate(params)
    gate.on_realized(D("-400"))
    gate.set_equity(D("9600"))
    assert gate.state is TradingState.ACTIVE
    gate.on_realized(D("-100"))
    assert gate.state is TradingState.HALTED
    gate.set_equity(D("9500"))
    clock.set_ms(midnight + 1)
    assert gate.state is TradingState.ACTIVE
    assert gate.daily_pnl == 0
    # The new day's limit is 5 % of the equity at the reset: 475.
    gate.on_realized(D("-474"))
    assert gate.state is TradingState.ACTIVE
    gate.on_realized(D("-1"))
    assert gate.state is TradingState.HALTED


def test_state_survives_a_restart_through_json() -> None:
    gate, clock = make_gate()
    gate.on_realized(D("-123.45"))
    losses(4)(gate, clock)
    gate.halt()
    gate.check_entry(BUY, FLAT)
    saved = json.loads(json.dumps(gate.to_dict()))
    fresh, _ = make_gate(now_ms=clock.now_ms())
    fresh.restore(saved)
    assert fresh.to_dict() == gate.to_dict()
    assert fresh.state is TradingState.HALTED
    assert fresh.daily_pnl == D("-123.45")
    fresh.resume()
    assert fresh.check_entry(BUY, FLAT).reason == "loss_cooldown"


# ---------------------------------------------------------------------------- property

ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("realized"), st.decimals(min_value=-2000, max_value=2000, places=2)),
    st.tuples(st.just("unrealized"), st.decimals(min_value=-2000, max_value=2000, places=2)),
    st.tuples(st.just("equity"), st.decimals(min_value=1, max_value=20000, places=2)),
    st.tuples(st.just("breaker"), st.booleans()),
    st.tuples(st.just("halt"), st.booleans()),
    st.tuples(st.just("ban"), st.integers(0, 600_000)),
    st.tuples(st.just("advance"), st.integers(0, 30 * 3_600_000)),
    st.tuples(st.just("trade"), st.decimals(min_value=-50, max_value=50, places=2)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(actions=ACTIONS, reset=st.sampled_from(["session", "utc_midnight"]),
       notional=st.decimals(min_value=1, max_value=4000, places=2))
def test_a_halted_or_reducing_gate_never_lets_an_entry_through(
    actions: list[tuple[str, object]], reset: str, notional: Decimal
) -> None:
    gate, clock = make_gate(replace(P, daily_reset=reset))
    for kind, value in actions:
        if kind == "realized":
            gate.on_realized(value)  # type: ignore[arg-type]
        elif kind == "unrealized":
            gate.set_unrealized(value)  # type: ignore[arg-type]
        elif kind == "equity":
            gate.set_equity(value)  # type: ignore[arg-type]
        elif kind == "breaker":
            gate.set_breaker("orders", bool(value))
        elif kind == "halt":
            gate.halt() if value else gate.resume()
        elif kind == "ban":
            gate.set_banned(clock.now_ms() + int(value))  # type: ignore[call-overload]
        elif kind == "advance":
            clock.set_ms(clock.now_ms() + int(value))  # type: ignore[call-overload]
            gate.on_candle(candle("BTCUSDT", clock.now_ms() - 60_000))
        else:
            gate.on_trade_closed(value)  # type: ignore[arg-type]
        state = gate.state
        verdict = gate.check_entry(EntryIntent("BTCUSDT", Side.BUY, notional), FLAT)
        if state is not TradingState.ACTIVE:
            assert not verdict.allowed and verdict.reason == state.value.lower()
        assert gate.allows(OrderKind.EXIT) and gate.allows(OrderKind.PROTECT)


@pytest.mark.parametrize(("exposure", "room"), [
    (FLAT, D("5000")),                                                   # per-symbol limit
    (Exposure(EQUITY, {"BTCUSDT": D("-1200")}), D("3800")),             # what the symbol already holds
    (Exposure(D("100000"), {"A": D("8000"), "B": D("8000")}), D("4000")),  # gross limit 20 000
    (Exposure(EQUITY, {"A": D("9000"), "B": D("19500")}), D("0")),       # 3× leverage already used
])
def test_entry_headroom(exposure: Exposure, room: Decimal) -> None:
    gate, _ = make_gate()
    assert gate.entry_headroom("BTCUSDT", exposure) == room


def test_an_entry_at_the_headroom_passes_and_one_cent_more_does_not() -> None:
    gate, _ = make_gate()
    exposure = Exposure(D("100000"), {"A": D("8000"), "B": D("8000")})
    room = gate.entry_headroom("BTCUSDT", exposure)
    assert gate.check_entry(EntryIntent("BTCUSDT", Side.BUY, room), exposure).allowed
    assert gate.check_entry(EntryIntent("BTCUSDT", Side.BUY, room + D("0.01")), exposure).reason == "max_gross_exposure"
