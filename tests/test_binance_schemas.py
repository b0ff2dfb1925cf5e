"""Every Binance fixture that maps to a kernel record, parsed and its mapped fields asserted.

Fixtures are read in place from ../shared/fixtures/binance (see its MANIFEST.md for provenance).
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.events import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    FillUpdate,
    MarginCall,
    MarkPriceUpdate,
    OrderUpdate,
)
from core.types import (
    AlgoStatus,
    Candle,
    ExecutionType,
    MarginType,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    Timeframe,
    TimeInForce,
    WorkingType,
)
from exchanges.binance import schemas
from exchanges.binance.frames import ListenKeyExpired, MarketDecoder, UserDecoder
from exchanges.binance.schemas import WireError
from tests.binance_fixtures import load_binance_net, load_json

NT_HTTP = "nautilus_trader/integration_resources/http_responses"
NT_WS = "nautilus_trader/integration_resources/ws_messages"
NT_USER = "nautilus_trader/crates_test_data/futures/user_data_json"
NT_JSON = "nautilus_trader/crates_test_data/futures/http_json"
NT_MD = "nautilus_trader/crates_test_data/futures/market_data_json"
BN = "binance_net/Endpoints/UsdFutures"
DOCS = "docs_examples"


# ------------------------------------------------------------------ reference data


def test_exchange_info_real_2021(fixtures_dir: Path) -> None:
    data = load_json(fixtures_dir / "cryptofeed/extracted/rest_exchangeInfo_BTC_ETH_SUSHI_2021-07-22.json")
    rules, limits = schemas.exchange_info(data)
    btc = rules["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_qty, btc.max_qty) == (D("0.01"), D("0.001"), D("0.001"), D("1000"))
    assert (btc.min_price, btc.max_price, btc.min_notional) == (D("556.72"), D("1000000"), D("5"))
    assert (btc.multiplier_up, btc.multiplier_down) == (D("1.1500"), D("0.8500"))
    assert (btc.market_step_size, btc.market_max_qty, btc.max_num_orders) == (D("0.001"), D("1000"), 200)
    assert btc.status == "TRADING" and btc.contract_type == "PERPETUAL" and btc.margin_asset == "USDT"
    sushi = rules["SUSHIUSDT"]
    assert (sushi.tick_size, sushi.step_size, sushi.market_max_qty) == (D("0.0010"), D("1"), D("100000"))
    assert [(r.kind, r.interval_ms, r.limit) for r in limits] == [
        ("REQUEST_WEIGHT", 60_000, 2400), ("ORDERS", 60_000, 1200), ("ORDERS", 10_000, 300)]


def test_exchange_info_real_2022_and_full_2021(fixtures_dir: Path) -> None:
    rules, limits = schemas.exchange_info(load_json(fixtures_dir / NT_HTTP / "http_futures_market_exchange_info.json"))
    assert rules["BTCUSDT"].tick_size == D("0.10") and rules["BTCUSDT"].min_notional == D("10")
    assert rules["BTCUSDT_220325"].contract_type == "CURRENT_QUARTER"
    assert limits[0].limit == 6000
    full, _ = schemas.exchange_info(load_json(fixtures_dir / "cryptofeed/extracted/rest_exchangeInfo_full_2021-07-22.json"))
    assert len(full) == 122 and all(r.tick_size > 0 and r.step_size > 0 for r in full.values())


def test_klines_rest(fixtures_dir: Path) -> None:
    for path in (fixtures_dir / NT_HTTP / "http_futures_market_klines.json", fixtures_dir / BN / "ExchangeData/GetKlines.txt"):
        rows = load_binance_net(path) if path.suffix == ".txt" else load_json(path)
        c = schemas.candle_from_rest(rows[0], "BTCUSDT", Timeframe.M1)
        assert c == Candle("BTCUSDT", Timeframe.M1, 1499040000000, D("0.01634790"), D("0.80000000"),
                           D("0.01575800"), D("0.01577100"), D("148976.11427815"), True, D("2434.19055334"),
                           308, D("1756.87402397"))


def test_premium_index_funding_commission(fixtures_dir: Path) -> None:
    mp = schemas.mark_price(load_json(fixtures_dir / NT_HTTP / "http_futures_market_premium_index.json"))
    assert (mp.symbol, mp.mark_price, mp.index_price, mp.funding_rate) == (
        "BTCUSDT", D("11793.63104562"), D("11781.80495970"), D("0.00038246"))
    assert (mp.next_funding_time_ms, mp.time_ms) == (1597392000000, 1597370495002)
    rates = [schemas.funding_rate(i) for i in load_json(fixtures_dir / NT_HTTP / "http_futures_market_funding_rate.json")]
    assert [(r.funding_rate, r.funding_time_ms, r.mark_price) for r in rates] == [
        (D("-0.03750000"), 1570608000000, None), (D("0.00010000"), 1570636800000, None)]
    cr = schemas.commission_rate(load_json(fixtures_dir / NT_HTTP / "http_futures_wallet_commission_rate_btcusdt.json"))
    assert (cr.symbol, cr.maker, cr.taker) == ("BTCUSDT", D("0.0002"), D("0.0005"))


# ------------------------------------------------------------------ orders


def test_order_responses(fixtures_dir: Path) -> None:
    o = schemas.order(load_json(fixtures_dir / NT_JSON / "order_response.json"))
    assert (o.order_id, o.client_order_id, o.symbol, o.side, o.type, o.status) == (
        12345678, "testOrder123", "BTCUSDT", Side.BUY, OrderType.LIMIT, OrderStatus.NEW)
    assert (o.quantity, o.price, o.executed_qty, o.time_in_force, o.update_time_ms) == (
        D("0.001"), D("50000.00"), D("0.000"), TimeInForce.GTC, 1625474304765)
    placed = schemas.order(load_binance_net(fixtures_dir / BN / "Trading/PlaceOrder.txt"))
    assert (placed.order_id, placed.type, placed.position_side, placed.time_in_force) == (
        22542179, OrderType.TRAILING_STOP_MARKET, PositionSide.SHORT, TimeInForce.GTD)
    cancelled = schemas.order(load_binance_net(fixtures_dir / BN / "Trading/CancelOrder.txt"))
    assert (cancelled.status, cancelled.order_id, cancelled.quantity) == (OrderStatus.CANCELED, 283194212, D("11"))
    assert "avgPrice" not in load_binance_net(fixtures_dir / BN / "Trading/CancelOrder.txt")  # tolerated
    opened = [schemas.order(i) for i in load_binance_net(fixtures_dir / BN / "Trading/GetOpenOrders.txt")]
    assert opened[0].order_id == 1917641 and opened[0].update_time_ms > 0
    queried = schemas.order(load_binance_net(fixtures_dir / BN / "Trading/GetOrder.txt"))
    assert queried.order_id > 0 and queried.symbol == "BTCUSDT"
    docs_orders = [schemas.order(i) for i in load_json(fixtures_dir / NT_HTTP / "http_futures_account_orders.json")]
    assert docs_orders and all(x.symbol for x in docs_orders)


def test_algo_order_responses(fixtures_dir: Path) -> None:
    new = schemas.algo_order(load_json(fixtures_dir / DOCS / "new_algo_order_response_docs.json"))
    assert (new.algo_id, new.client_algo_id, new.type, new.status, new.side) == (
        2146760, "6B2I9XVcJpCjqPAJ4YoFX7", OrderType.TAKE_PROFIT, AlgoStatus.NEW, Side.SELL)
    assert (new.quantity, new.trigger_price, new.price, new.working_type) == (
        D("0.01"), D("750.000"), D("750.000"), WorkingType.CONTRACT_PRICE)
    assert (new.activate_price, new.callback_rate, new.actual_order_id) == (None, None, None)  # "" = absent
    q = schemas.algo_order(load_json(fixtures_dir / DOCS / "query_algo_order_response_docs.json"))
    assert (q.status, q.actual_order_id, q.update_time_ms) == (AlgoStatus.CANCELED, None, 1750514545091)
    real = schemas.algo_order(load_binance_net(fixtures_dir / BN / "Trading/GetConditionalOrder.txt"))
    assert (real.status, real.type, real.actual_order_id, real.executed_qty, real.avg_price, real.trigger_price) == (
        AlgoStatus.FINISHED, OrderType.STOP_MARKET, 974828356187, D("0.002"), D("69067.60000"), D("69080.20"))
    placed = schemas.algo_order(load_binance_net(fixtures_dir / BN / "Trading/PlaceConditionalOrder.txt"))
    assert placed.algo_id == 2146760


def test_synthetic_open_algo_orders_uses_wrong_key_and_is_refused(fixtures_dir: Path) -> None:
    # MANIFEST: nautilus-authored, uses 'type' where the real API sends 'orderType'. The parser is
    # not bent to it: it fails loudly, naming the missing field.
    items = load_json(fixtures_dir / NT_JSON / "open_algo_orders.json")
    with pytest.raises(WireError, match="orderType"):
        schemas.algo_order(items[0])
    fixed = {**items[0], "orderType": items[0]["type"]}
    algo = schemas.algo_order(fixed)
    assert (algo.algo_id, algo.type, algo.working_type, algo.trigger_price) == (
        123456789, OrderType.STOP_MARKET, WorkingType.MARK_PRICE, D("45000.00"))


# ------------------------------------------------------------------ account


def test_position_risk(fixtures_dir: Path) -> None:
    v3 = [schemas.position(i) for i in load_json(fixtures_dir / DOCS / "position_risk_v3_oneway_docs.json")]
    p = v3[0]
    assert (p.symbol, p.quantity, p.entry_price, p.mark_price, p.unrealized_pnl) == (
        "ADAUSDT", D("30"), D("0.385"), D("0.41047590"), D("0.76427700"))
    assert (p.break_even_price, p.leverage, p.margin_type, p.update_time_ms) == (D("0.385077"), None, None, 1720736417660)
    synth = schemas.position(load_json(fixtures_dir / NT_JSON / "position_risk.json")[0])
    assert (synth.leverage, synth.margin_type, synth.liquidation_price) == (20, MarginType.CROSSED, D("45000.0"))
    v2 = [schemas.position(i) for i in load_binance_net(fixtures_dir / BN / "Account/GetPositionInformation.txt")]
    assert v2[0].margin_type is MarginType.ISOLATED and v2[0].leverage == 10
    one_way = [schemas.position(i) for i in load_json(fixtures_dir / NT_HTTP / "http_futures_account_positions_one_way.json")]
    assert all(x.position_side is PositionSide.BOTH for x in one_way)


def test_balances_and_account(fixtures_dir: Path) -> None:
    b = schemas.balance(load_binance_net(fixtures_dir / BN / "Account/GetBalances.txt")[0])
    assert (b.asset, b.wallet_balance, b.available_balance, b.cross_wallet_balance, b.cross_unrealized_pnl) == (
        "USDT", D("122607.35137903"), D("23.72469206"), D("23.72469206"), D("0.00000000"))
    nt = [schemas.balance(i) for i in load_json(fixtures_dir / NT_JSON / "balance.json")]
    assert nt and all(x.asset for x in nt)
    account = load_binance_net(fixtures_dir / BN / "Account/GetAccountInfoV3.txt")
    assets = [schemas.balance(a) for a in account["assets"]]
    usdt = next(a for a in assets if a.asset == "USDT")
    assert usdt.wallet_balance == D(next(a for a in account["assets"] if a["asset"] == "USDT")["walletBalance"])
    positions = [schemas.position(p) for p in account["positions"]]
    assert all(isinstance(p.quantity, D) for p in positions)


def test_user_trades_and_income(fixtures_dir: Path) -> None:
    fills = [schemas.user_trade(i) for i in load_json(fixtures_dir / NT_HTTP / "http_futures_account_trades.json")]
    f = fills[0]
    assert (f.symbol, f.trade_id, f.order_id, f.side, f.price, f.quantity) == (
        "ETHUSDT", 82357626, 831238666, Side.SELL, D("2778.35"), D("0.005"))
    assert (f.commission, f.commission_asset, f.is_maker, f.time_ms) == (D("0.00555670"), "USDT", False, 1645930322371)
    incomes = [schemas.income(i) for i in load_binance_net(fixtures_dir / BN / "Account/GetIncomeHistory.txt")]
    assert (incomes[0].income_type, incomes[0].income, incomes[0].tran_id, incomes[0].symbol) == (
        "TRANSFER", D("-0.37500000"), 9689322392, "")
    assert incomes[1].income_type == "COMMISSION"


# ------------------------------------------------------------------ user-data events


def _user(path: Path) -> object:
    return UserDecoder().decode(path.read_bytes())


def test_order_trade_update_every_status(fixtures_dir: Path) -> None:
    new = _user(fixtures_dir / DOCS / "order_trade_update_docs_2026.json")
    assert isinstance(new, OrderUpdate)
    assert (new.order.status, new.execution_type, new.order.type, new.order.position_side) == (
        OrderStatus.NEW, ExecutionType.NEW, OrderType.TRAILING_STOP_MARKET, PositionSide.LONG)
    assert (new.order.order_id, new.order.client_order_id, new.fill, new.expiry_reason) == (8886774, "TEST", None, "0")

    partial = _user(fixtures_dir / NT_USER / "order_update_trade_partial.json")
    assert isinstance(partial, OrderUpdate) and partial.order.status is OrderStatus.PARTIALLY_FILLED
    assert partial.fill is not None
    assert (partial.fill.trade_id, partial.fill.price, partial.fill.quantity, partial.fill.commission) == (
        12345678, D("7100.50"), D("0.001"), D("0.01000000"))
    assert partial.order.remaining_qty == D("0.001")

    filled = _user(fixtures_dir / NT_WS / "ws_futures_order_update_trade_reduce_only_qty.json")
    assert isinstance(filled, OrderUpdate) and filled.order.status is OrderStatus.FILLED
    assert filled.order.reduce_only and filled.fill is not None and filled.fill.quantity == D("1.000")

    liquidation = _user(fixtures_dir / NT_USER / "order_update_calculated.json")
    assert isinstance(liquidation, OrderUpdate)
    assert liquidation.execution_type is ExecutionType.CALCULATED and liquidation.order.client_order_id.startswith("autoclose-")
    assert liquidation.fill is not None and liquidation.fill.price == D("9910.12")

    # No commission field ("will not push if no commission") → zero commission, fill kept.
    delivery = _user(fixtures_dir / NT_USER / "order_update_delivery.json")
    assert isinstance(delivery, OrderUpdate) and delivery.fill is not None and delivery.fill.commission == 0

    # Legacy liquidation statuses of older docs (synthetic fixtures) map to NEW.
    for name in ("order_update_adl.json", "order_update_insurance.json"):
        ev = _user(fixtures_dir / NT_USER / name)
        assert isinstance(ev, OrderUpdate) and ev.order.status is OrderStatus.NEW

    zero = _user(fixtures_dir / NT_WS / "ws_futures_order_update_liquidation_zero_qty.json")
    assert isinstance(zero, OrderUpdate) and zero.fill is None  # l = 0: no fill

    for path in sorted((fixtures_dir / NT_USER).glob("order_update_*.json")) + sorted(
            (fixtures_dir / NT_WS).glob("ws_futures_order_update_*.json")):
        assert isinstance(_user(path), OrderUpdate), path.name


def test_canceled_and_expired_statuses_from_the_documented_shape(fixtures_dir: Path) -> None:
    # No real CANCELED/EXPIRED capture exists (MANIFEST "Gaps"): derive them from the 2026 docs frame.
    base = json.loads((fixtures_dir / DOCS / "order_trade_update_docs_2026.json").read_text())
    for x, status, er in (("CANCELED", "CANCELED", "0"), ("EXPIRED", "EXPIRED", "6"), ("EXPIRED", "EXPIRED_IN_MATCH", "1")):
        frame = {**base, "o": {**base["o"], "x": x, "X": status, "er": er}}
        ev = UserDecoder().decode(json.dumps(frame))
        assert isinstance(ev, OrderUpdate) and ev.order.status is OrderStatus(status) and ev.expiry_reason == er
    bad = {**base, "o": {**base["o"], "X": "PENDING_SOMETHING"}}
    decoder = UserDecoder()
    assert decoder.decode(json.dumps(bad)) is None and decoder.malformed == 1  # unknown enum: loud, skipped


def test_trade_lite_and_fill_dedupe(fixtures_dir: Path) -> None:
    real = _user(fixtures_dir / NT_WS / "ws_futures_trade_lite.json")
    assert isinstance(real, FillUpdate)
    assert (real.fill.symbol, real.fill.order_id, real.fill.trade_id, real.fill.price, real.fill.quantity) == (
        "ETHUSDT", 8389765739703625592, 4467432841, D("2631.90"), D("0.037"))
    docs = _user(fixtures_dir / DOCS / "trade_lite_docs.json")
    assert isinstance(docs, FillUpdate) and docs.fill.key == (8886774, 109100866)

    decoder = UserDecoder()
    lite = json.loads((fixtures_dir / NT_USER / "trade_lite.json").read_text())
    update = json.loads((fixtures_dir / NT_USER / "order_update_trade.json").read_text())
    lite = {**lite, "i": update["o"]["i"], "t": update["o"]["t"]}
    first = decoder.decode(json.dumps(lite))
    second = decoder.decode(json.dumps(update))
    assert isinstance(first, FillUpdate)
    # the order update keeps its fill: only it carries the commission and realized PnL
    assert isinstance(second, OrderUpdate) and second.order.status is OrderStatus.PARTIALLY_FILLED
    assert second.fill is not None and second.fill.key == first.fill.key
    assert decoder.decode(json.dumps(lite)) is None and decoder.duplicates == 2


def test_algo_update_every_status(fixtures_dir: Path) -> None:
    seen = {}
    for name in ("triggering", "triggered", "finished", "finished_canceled"):
        ev = _user(fixtures_dir / NT_WS / f"ws_futures_algo_update_{name}.json")
        assert isinstance(ev, AlgoUpdate)
        seen[name] = ev.algo
    assert seen["triggering"].status is AlgoStatus.TRIGGERING and seen["triggering"].actual_order_id is None
    assert (seen["triggered"].status, seen["triggered"].actual_order_id) == (AlgoStatus.TRIGGERED, 88937381063)
    fin = seen["finished"]
    assert (fin.status, fin.executed_qty, fin.avg_price, fin.trigger_price, fin.algo_id) == (
        AlgoStatus.FINISHED, D("38"), D("0.13856"), D("0.13855"), 1000000033225453)
    assert fin.client_algo_id == "O-20251211-053131-TEST-000-1" and fin.type is OrderType.STOP_MARKET
    assert seen["finished_canceled"].executed_qty == 0
    cancelled = _user(fixtures_dir / DOCS / "algo_update_docs.json")
    assert isinstance(cancelled, AlgoUpdate)
    assert (cancelled.algo.status, cancelled.algo.reason, cancelled.algo.type) == (
        AlgoStatus.CANCELED, "Reduce Only reject", OrderType.TAKE_PROFIT)
    for name in ("algo_update_new.json", "algo_update_canceled.json"):
        ev = _user(fixtures_dir / NT_USER / name)
        assert isinstance(ev, AlgoUpdate)
    base = json.loads((fixtures_dir / DOCS / "algo_update_docs.json").read_text())
    for status in ("NEW", "EXPIRED", "REJECTED"):
        ev = UserDecoder().decode(json.dumps({**base, "o": {**base["o"], "X": status}}))
        assert isinstance(ev, AlgoUpdate) and ev.algo.status is AlgoStatus(status)


def test_account_update_incl_funding(fixtures_dir: Path) -> None:
    ev = _user(fixtures_dir / NT_USER / "account_update.json")
    assert isinstance(ev, AccountUpdate) and ev.reason == "ORDER"
    assert ev.balances[0].asset == "USDT" and ev.balances[0].wallet_balance == D("122624.12345678")
    assert ev.balance_changes == (("USDT", D("50.12345678")),)
    long = next(p for p in ev.positions if p.position_side is PositionSide.LONG)
    assert (long.quantity, long.entry_price, long.break_even_price, long.margin_type) == (
        D("20"), D("6563.6"), D("6563.559"), MarginType.ISOLATED)
    bnfcr = _user(fixtures_dir / NT_USER / "account_update_bnfcr.json")
    assert isinstance(bnfcr, AccountUpdate) and bnfcr.positions == () and bnfcr.balances[0].asset == "BNFCR"
    # No FUNDING_FEE capture exists; this is the documented cross-margin shape (BINANCE.md §6): B only, S set.
    funding = {"e": "ACCOUNT_UPDATE", "E": 1700000000001, "T": 1700000000000,
               "a": {"m": "FUNDING_FEE", "S": "BTCUSDT", "B": [{"a": "USDT", "wb": "100.5", "cw": "100.5", "bc": "-0.25"}]}}
    fee = UserDecoder().decode(json.dumps(funding))
    assert isinstance(fee, AccountUpdate)
    assert (fee.reason, fee.symbol, fee.positions, fee.balance_changes) == ("FUNDING_FEE", "BTCUSDT", (), (("USDT", D("-0.25")),))


def test_other_user_events(fixtures_dir: Path) -> None:
    cfg = _user(fixtures_dir / DOCS / "account_config_update_leverage_docs.json")
    assert cfg == AccountConfigUpdate("BTCUSDT", 25, None, 1611646737479)
    mc = _user(fixtures_dir / DOCS / "margin_call_docs.json")
    assert mc == MarginCall(("ETHUSDT",), 1587727187525)
    expired = _user(fixtures_dir / DOCS / "listen_key_expired_docs.json")  # E is a string here
    assert expired == ListenKeyExpired(1736996475556)
    decoder = UserDecoder()
    assert decoder.decode(b'{"e":"GRID_UPDATE","E":1}') is None and decoder.unknown == 1
    assert decoder.decode(b'{"e":"ORDER_TRADE_UPDATE"') is None and decoder.malformed == 1


# ------------------------------------------------------------------ market frames


def test_kline_and_mark_price_frames(fixtures_dir: Path) -> None:
    decoder = MarketDecoder("market")
    closed = decoder.decode((fixtures_dir / NT_MD / "kline_stream_closed.json").read_bytes())
    assert isinstance(closed, Candle) and closed.closed
    assert (closed.symbol, closed.timeframe, closed.open_time_ms, closed.open, closed.close, closed.volume, closed.trades) == (
        "BTCUSDT", Timeframe.M1, 1638747660000, D("0.0010"), D("0.0020"), D("1000"), 100)
    opened = decoder.decode((fixtures_dir / NT_MD / "kline_stream_open.json").read_bytes())
    assert isinstance(opened, Candle) and not opened.closed
    lines = (fixtures_dir / "cryptofeed/extracted/ws_combined_kline_closed_2021-07-22.jsonl").read_text().splitlines()
    real = [decoder.decode(line) for line in lines]
    assert all(isinstance(c, Candle) and c.closed for c in real) and len(real) == 4
    assert real[0].symbol == "SUSHIUSDT" and real[0].close == D("7.6170") and real[0].open_time_ms == 1626992700000
    mark = decoder.decode((fixtures_dir / NT_MD / "mark_price_stream.json").read_bytes())
    assert mark == MarkPriceUpdate("BTCUSDT", D("11794.15000000"), D("11784.62659091"), D("0.00038167"),
                                   1562306400000, 1562305380000)
    assert decoder.malformed == 0
