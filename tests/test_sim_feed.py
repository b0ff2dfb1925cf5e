"""Recorded candles → price path, klines and funding, on the real futures-2023 data."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.types import AlgoStatus, OrderType, Side, Timeframe
from exchanges.sim.feed import MINUTE_MS, intra_bar_path, kline_rows, load_symbol_data
from exchanges.sim.matching import EngineConfig
from exchanges.sim.records import AccountEvent
from exchanges.sim.venue import KlineTick, MarkTick, Venue, VenueConfig


@pytest.fixture(scope="module")
def btc(data_dir: Path):
    return load_symbol_data(data_dir / "futures-2023", "BTCUSDT")


prices = st.integers(min_value=1000, max_value=2000)


@given(prices, prices, prices, prices, st.integers(min_value=4, max_value=30),
       st.sampled_from([None, Side.BUY, Side.SELL]))
def test_path_visits_ohlc_in_order_within_the_minute(a: int, b: int, c: int, d: int, steps: int, adverse) -> None:
    hi, lo = D(max(a, b, c, d)), D(min(a, b, c, d))
    o, cl = D(a), D(d)
    path = intra_bar_path(o, hi, lo, cl, open_time_ms=60_000, steps=steps, tick=D(1), adverse=adverse)
    assert len(path) == steps and path[0].price == o and path[-1].price == cl
    assert path[0].time_ms == 60_000 and path[-1].time_ms == 60_000 + MINUTE_MS - 1
    assert all(lo <= p.price <= hi for p in path)
    ps = [p.price for p in path]
    assert hi in ps and lo in ps
    first_leg_end = (steps - 1) // 3 + (1 if (steps - 1) % 3 else 0)
    if adverse is Side.BUY:  # a long sees the low first
        assert ps[first_leg_end] == lo
    if adverse is Side.SELL:
        assert ps[first_leg_end] == hi
    assert all(x.time_ms < y.time_ms for x, y in zip(path, path[1:], strict=False))


def test_kline_rows_serve_only_closed_history(btc) -> None:
    now = int(btc.m1.open_time[100]) + 30_000  # inside bar 100
    rows = kline_rows(btc, Timeframe.M1, now_ms=now, start_ms=None, end_ms=None, limit=10)
    assert [r.open_time_ms for r in rows] == [int(t) for t in btc.m1.open_time[90:100]]
    page = kline_rows(btc, Timeframe.M1, now_ms=now, start_ms=int(btc.m1.open_time[0]), end_ms=None, limit=5)
    assert len(page) == 5 and page[0].open_time_ms == int(btc.m1.open_time[0])
    h1 = kline_rows(btc, Timeframe.H1, now_ms=now + 10 * 3_600_000, start_ms=None, end_ms=None, limit=3)
    assert all(r.open_time_ms % 3_600_000 == 0 for r in h1) and h1[-1].close_time_ms < now + 10 * 3_600_000


def _bar_with_range(v: Venue, sym: str, min_range: D) -> int:
    d = v.data[sym]
    i = d.bar_index(v.now_ms + 1)  # the first bar still to play
    assert i is not None
    tick = v.specs[sym].rules.tick_size
    while True:
        o, h, low, c, _ = d.decimal_bar(i, tick)
        if h - o > min_range and o - low > min_range:
            return int(d.m1.open_time[i])
        i += 1


@pytest.mark.parametrize("pessimistic", [True, False])
def test_same_bar_stop_and_target_resolve_stop_first_when_pessimistic(btc, pessimistic: bool) -> None:
    v = Venue({"BTCUSDT": btc}, EngineConfig(pessimistic=pessimistic), VenueConfig(path_steps=8))
    e = v.engine
    bar = _bar_with_range(v, "BTCUSDT", D(15))
    v.advance_to(bar - 1)
    e.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, quantity=D("0.010"), now_ms=v.now_ms)
    i = btc.bar_index(bar)
    o, h, low, c, _ = btc.decimal_bar(i, D("0.1"))
    sl = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.STOP_MARKET, now_ms=v.now_ms,
                      trigger_price=low + D("5"), close_position=True)
    tp = e.place_algo(symbol="BTCUSDT", side=Side.SELL, order_type=OrderType.TAKE_PROFIT_MARKET, now_ms=v.now_ms,
                      trigger_price=h - D("5"), close_position=True)
    v.advance_to(bar + MINUTE_MS - 1)
    sl_status = e.get_algo(algo_id=sl.algo_id).status
    tp_status = e.get_algo(algo_id=tp.algo_id).status
    nearer_high = abs(h - o) <= abs(o - low)
    if pessimistic or not nearer_high:
        assert (sl_status, tp_status) == (AlgoStatus.FINISHED, AlgoStatus.EXPIRED)
    else:
        assert (sl_status, tp_status) == (AlgoStatus.EXPIRED, AlgoStatus.FINISHED)
    assert e.account.position("BTCUSDT").qty == 0


def test_venue_emits_closed_klines_marks_and_recorded_funding(btc) -> None:
    v = Venue({"BTCUSDT": btc})
    start = v.now_ms
    v.engine.place_order(symbol="BTCUSDT", side=Side.BUY, order_type=OrderType.MARKET, quantity=D("0.010"),
                         now_ms=v.now_ms)
    v.engine.drain()
    funding_at = (start // 28_800_000 + 1) * 28_800_000
    events, ticks = v.advance_to(funding_at + 5 * MINUTE_MS)
    closed = [t for t in ticks if isinstance(t, KlineTick) and t.candle.closed]
    # first the bar whose last millisecond the clock started on (``start``), then each bar played
    assert [t.candle.open_time_ms for t in closed] == list(range(start + 1 - MINUTE_MS, funding_at + 5 * MINUTE_MS,
                                                                 MINUTE_MS))
    assert closed[0].time_ms == start
    row = btc.bar_index(closed[0].candle.open_time_ms)
    assert closed[0].candle.close == btc.decimal_bar(row, D("0.1"))[3]
    assert any(isinstance(t, MarkTick) for t in ticks)
    fees = [ev for ev in events if isinstance(ev, AccountEvent) and ev.reason == "FUNDING_FEE"]
    assert len(fees) == 1 and fees[0].time_ms == funding_at
    rate = btc.funding.rate_at(funding_at)
    mark_then = v.recorded_mark("BTCUSDT", funding_at)  # the recorded 8h mark-price kline's open
    assert mark_then is not None
    entry = [x for x in v.engine.account.ledger if x.income_type == "FUNDING_FEE"]
    assert rate is not None and entry[0].amount == (-D("0.010") * mark_then * rate).quantize(D("1e-8"))


def test_replay_is_deterministic(btc) -> None:
    """Same data, same orders, same times → the same events, field for field."""

    def run() -> list:
        v = Venue({"BTCUSDT": btc}, warmup_bars=500)
        e = v.engine
        out = []
        for hour in range(6):
            e.place_order(symbol="BTCUSDT", side=Side.BUY if hour % 2 == 0 else Side.SELL,
                          order_type=OrderType.MARKET, quantity=D("0.010"), now_ms=v.now_ms)
            mark = e.mark_price("BTCUSDT")
            side = Side.SELL if hour % 2 == 0 else Side.BUY
            factor = D("0.998") if side is Side.SELL else D("1.002")
            e.place_algo(symbol="BTCUSDT", side=side, order_type=OrderType.STOP_MARKET, now_ms=v.now_ms,
                         trigger_price=(mark * factor).quantize(D("0.1")), close_position=True)
            events, ticks = v.advance_to(v.now_ms + 3_600_000)
            out.extend(e.drain())
            out.extend(events)
            out.extend(ticks)
        return out

    first, second = run(), run()
    assert len(first) > 100 and first == second
