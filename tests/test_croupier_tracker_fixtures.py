"""PositionTracker replaying a session built from real Binance payload values (fixtures in place).

The ORDER_TRADE_UPDATE and ACCOUNT_UPDATE payloads are read from /work/shared/fixtures/binance.
The fixture set has no FUNDING_FEE ACCOUNT_UPDATE, so that one event is written here in the
shape BINANCE.md §6 documents (cross margin: ``B`` only, ``bc`` = the fee), and the closing
fill is a TRADE frame in the fixtures' own shape; both are marked where they are built.
The small wire→kernel mapping below stands in for the connector's schemas (another module);
it maps only the fields the tracker reads.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.events import AccountUpdate
from core.types import Balance, Fill, Side
from croupier.tracker import PositionTracker

D = Decimal
USER = "nautilus_trader/crates_test_data/futures/user_data_json"
WS = "nautilus_trader/integration_resources/ws_messages"


def _load(fixtures: Path, rel: str) -> dict[str, Any]:
    doc = json.loads((fixtures / rel).read_text())
    return doc.get("data", doc)  # nautilus wraps some frames in {"stream", "data"}


def _fill(event: dict[str, Any]) -> Fill:
    o = event["o"]
    assert event["e"] == "ORDER_TRADE_UPDATE" and o["x"] == "TRADE"
    return Fill(o["s"], int(o["i"]), int(o["t"]), o["c"], Side(o["S"]), D(o["L"]), D(o["l"]),
                D(o.get("n") or "0"), o.get("N") or "USDT", D(o.get("rp") or "0"), bool(o["m"]), int(o["T"]))


def _account(event: dict[str, Any]) -> AccountUpdate:
    a = event["a"]
    balances = tuple(Balance(b["a"], D(b["wb"]), D(b["cw"]), D(b["cw"])) for b in a["B"])
    changes = tuple((b["a"], D(b["bc"])) for b in a["B"])
    return AccountUpdate(a["m"], balances, (), int(event["E"]), int(event["T"]), a.get("S", ""), changes)


def test_replay_of_fixture_values_reconciles_to_the_cent(fixtures_dir: Path) -> None:
    start = _account(_load(fixtures_dir, f"{USER}/account_update.json"))
    opening = next(b for b in start.balances if b.asset == "USDT")
    assert opening.wallet_balance == D("122624.12345678")
    buy = _fill(_load(fixtures_dir, f"{USER}/order_update_trade.json"))
    same_trade = _fill(_load(fixtures_dir, f"{USER}/order_update_trade_partial.json"))
    eth_sell = _fill(_load(fixtures_dir, f"{WS}/ws_futures_order_update_trade_reduce_only_qty.json"))
    assert (buy.order_id, buy.trade_id) == (same_trade.order_id, same_trade.trade_id)  # one trade, reported twice

    tracker = PositionTracker()
    tracker.open_balance("USDT", opening.wallet_balance, time_ms=start.event_time_ms)
    assert tracker.apply_fill(buy)
    assert not tracker.apply_fill(same_trade)
    assert tracker.position("BTCUSDT").quantity == D("0.001")
    assert tracker.position("BTCUSDT").avg_entry == D("7100.50")

    # FUNDING_FEE in the documented cross-margin shape (no fixture exists; "S" per SDK 17.0.1): a long pays
    # rate 0.0001 × notional 0.001 × 7100.50 = 0.00071005 USDT.
    funding = _account({
        "e": "ACCOUNT_UPDATE", "E": 1568880000005, "T": 1568880000000,
        "a": {"m": "FUNDING_FEE", "S": "BTCUSDT", "B": [{"a": "USDT", "wb": "122624.11274673", "cw": "122624.11274673",
                                          "bc": "-0.00071005"}], "P": []},
    })
    assert tracker.apply_account_update(funding)
    assert not tracker.apply_account_update(funding)  # a reconnect may deliver it again

    # the close: a TRADE frame shaped like the fixtures, selling the 0.001 BTC at 7250.00 (taker 0.05 %)
    close_frame = _load(fixtures_dir, f"{USER}/order_update_trade.json")
    close_frame["o"].update({"S": "SELL", "i": 8886775, "t": 12345690, "L": "7250.00", "l": "0.001", "z": "0.001",
                             "X": "FILLED", "n": "0.00362500", "m": False, "rp": "0.14950000", "T": 1568880100000})
    close = _fill(close_frame)
    assert tracker.apply_fill(close)
    # the ETH reduce-only SELL fixture, on a symbol with no position here, opens a short
    assert tracker.apply_fill(eth_sell)

    btc = tracker.position("BTCUSDT")
    assert btc.quantity == 0 and btc.realized_pnl == D("0.14950") == btc.exchange_realized_pnl - D("12.34")
    assert btc.funding == D("-0.00071005")
    eth = tracker.position("ETHUSDT")
    assert eth.quantity == D("-1.000") and eth.avg_entry == D("2500.00")
    tracker.set_mark("ETHUSDT", D("2490.00"))
    assert tracker.unrealized_pnl("ETHUSDT") == D("10.00000")
    expected_wallet = (D("122624.12345678") - D("0.01000000") - D("0.00071005") + D("0.14950")
                       - D("0.00362500") - D("0.50000000"))
    assert tracker.wallet("USDT") == expected_wallet
    assert tracker.reconcile_wallet("USDT", D("122623.75862173")).ok
    assert not tracker.reconcile_wallet("USDT", D("122623.74")).ok
    assert tracker.ledger.is_balanced()
    assert tracker.ledger.balance("fees", "USDT") == D("0.51362500")
