"""croupier.tracker: positions and money from fills, funding and transfers; a ledger that balances."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.errors import StateError
from core.events import AccountUpdate
from core.types import Balance, Fill, Income, Side
from croupier.ledger import Ledger, LedgerLeg, UnbalancedPosting
from croupier.tracker import PositionTracker
from state.recovery import recover_state_dir
from state.snapshot import SnapshotWriter

D = Decimal
_trade_ids = iter(range(1, 10**9))


def fill(side: Side, qty: str, price: str, *, fee: str = "0", fee_asset: str = "USDT", symbol: str = "BTCUSDT",
         order_id: int = 1, trade_id: int | None = None, rp: str = "0", t: int = 0) -> Fill:
    return Fill(symbol, order_id, trade_id if trade_id is not None else next(_trade_ids), "c", side, D(price), D(qty),
                D(fee), fee_asset, D(rp), False, t)


def test_open_add_reduce_and_reverse_through_zero() -> None:
    tr = PositionTracker()
    tr.apply_fill(fill(Side.BUY, "2", "100"))
    tr.apply_fill(fill(Side.BUY, "1", "103"))
    pos = tr.position("BTCUSDT")
    assert pos.quantity == D(3) and pos.avg_entry == D(101) and pos.realized_pnl == 0
    tr.apply_fill(fill(Side.SELL, "1", "111"))
    assert tr.position("BTCUSDT").realized_pnl == D(10) and tr.position("BTCUSDT").avg_entry == D(101)
    tr.apply_fill(fill(Side.SELL, "5", "90"))  # closes 2 (−22) and opens a 3 short at 90
    pos = tr.position("BTCUSDT")
    assert pos.quantity == D(-3) and pos.avg_entry == D(90) and pos.realized_pnl == D(-12)
    tr.set_mark("BTCUSDT", D("80"))
    assert tr.position("BTCUSDT").unrealized_pnl == D(30)
    tr.apply_fill(fill(Side.BUY, "3", "85"))
    assert tr.position("BTCUSDT").quantity == 0 and tr.realized_pnl() == D(3)
    assert tr.ledger.is_balanced()


def test_commissions_stay_in_their_asset() -> None:
    tr = PositionTracker()
    tr.open_balance("USDT", D("1000"))
    tr.open_balance("BNB", D("1"))
    tr.apply_fill(fill(Side.BUY, "1", "100", fee="0.0001", fee_asset="BNB"))
    tr.apply_fill(fill(Side.SELL, "1", "101", fee="0.0404"))
    assert tr.wallet("BNB") == D("0.9999") and tr.wallet("USDT") == D("1000.9596")
    assert dict(tr.position("BTCUSDT").commissions) == {"BNB": D("0.0001"), "USDT": D("0.0404")}
    assert tr.ledger.balance("fees", "BNB") == D("0.0001")
    assert tr.ledger.is_balanced()


def test_duplicate_fills_are_ignored() -> None:
    tr = PositionTracker()
    first = fill(Side.BUY, "1", "100", order_id=9, trade_id=5, fee="0.04")
    assert tr.apply_fill(first)
    assert not tr.apply_fill(first)  # e.g. TRADE_LITE, then ORDER_TRADE_UPDATE
    assert tr.position("BTCUSDT").quantity == 1 and tr.duplicates == 1
    assert tr.apply_fill(fill(Side.BUY, "1", "100", order_id=9, trade_id=6))


def test_funding_from_the_stream_and_the_income_history_counts_once() -> None:
    tr = PositionTracker()
    tr.open_balance("USDT", D("500"))
    update = AccountUpdate("FUNDING_FEE", (Balance("USDT", D("499.99"), D("0")),), (), 1_700_000_000_123,
                           1_700_000_000_100, "", (("USDT", D("-0.0100")),))
    assert tr.apply_account_update(update)
    income = Income("BTCUSDT", "FUNDING_FEE", D("-0.01"), "USDT", 1_700_000_000_000, 777)
    assert not tr.apply_income(income)  # the same payment, reported again
    assert tr.wallet("USDT") == D("499.99")
    assert tr.ledger.balance("funding:?", "USDT") == D("0.0100")


def test_transfers_and_order_updates() -> None:
    tr = PositionTracker()
    deposit = AccountUpdate("DEPOSIT", (), (), 5, 5, "", (("USDT", D("100")),))
    assert tr.apply_account_update(deposit) and not tr.apply_account_update(deposit)
    assert not tr.apply_account_update(AccountUpdate("ORDER", (), (), 6, 6, "", (("USDT", D("0")),)))
    assert not tr.apply_income(Income("BTCUSDT", "COMMISSION", D("-0.01"), "USDT", 7, 8))  # fills carry it
    assert tr.apply_income(Income("", "TRANSFER", D("-0.375"), "USDT", 9, 9689322392))
    assert tr.wallet("USDT") == D("99.625")
    assert tr.ledger.balance("capital:DEPOSIT", "USDT") == D("-100")


def test_wallet_reconciliation_to_the_cent() -> None:
    tr = PositionTracker()
    tr.open_balance("USDT", D("1000"))
    tr.apply_fill(fill(Side.BUY, "0.5", "100.02", fee="0.02000400"))
    assert tr.reconcile_wallet("USDT", D("999.98")).ok  # within a cent
    check = tr.reconcile_wallet("USDT", D("999.96"))
    assert not check.ok and check.difference == D("0.019996")


def test_ledger_refuses_unbalanced_postings() -> None:
    ledger = Ledger()
    with pytest.raises(UnbalancedPosting, match="do not balance"):
        ledger.post("x", 0, [LedgerLeg("wallet", "USDT", D(1)), LedgerLeg("capital", "USDT", D(-2))])
    assert ledger.balances() == {} and ledger.postings == 0
    with pytest.raises(StateError, match="does not balance"):
        Ledger.from_dict({"balances": [["wallet", "USDT", "1"]]})


def test_bad_inputs() -> None:
    tr = PositionTracker()
    with pytest.raises(ValueError, match="positive"):
        tr.set_mark("BTCUSDT", D(0))
    bad = Fill("BTCUSDT", 1, 1, "c", Side.BUY, D("0"), D("1"), D(0), "USDT", D(0), False, 0)
    with pytest.raises(ValueError, match="non-positive"):
        tr.apply_fill(bad)
    with pytest.raises(StateError, match="unreadable"):
        PositionTracker.from_dict({"books": {}})


# ------------------------------------------------------------------------- properties

_fills = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 50), st.integers(90_000, 110_000),
              st.integers(0, 3)),
    min_size=1, max_size=40,
)


def _fifo_reference(steps: list[tuple[Side, Decimal, Decimal]]) -> list[Fraction | None]:
    """Realized PnL by FIFO lots, reported only where the position is flat (else None)."""
    lots: list[list[Fraction]] = []  # [signed qty, price]
    realized = Fraction(0)
    out: list[Fraction | None] = []
    for side, qty, price in steps:
        q, p = Fraction(qty) * side.sign, Fraction(price)
        while q and lots and (lots[0][0] > 0) != (q > 0):
            lot = lots[0]
            closed = min(abs(q), abs(lot[0]))
            direction = 1 if lot[0] > 0 else -1
            realized += direction * closed * (p - lot[1])
            lot[0] -= direction * closed
            q += direction * closed
            if lot[0] == 0:
                lots.pop(0)
        if q:
            lots.append([q, p])
        out.append(realized if not lots else None)
    return out


@settings(max_examples=150, deadline=None)
@given(_fills, st.integers(90_000, 110_000))
def test_random_fills_keep_the_ledger_balanced_and_pnl_exact(
    raw: list[tuple[Side, int, int, int]], mark_raw: int
) -> None:
    tr = PositionTracker()
    tr.open_balance("USDT", D("10000"))
    steps = [(side, D(q) / 1000, D(p) / 10) for side, q, p, _ in raw]
    fees = [(D(q) * D(p) / 10000 * D("0.0004") * k).quantize(D("1E-8")) for _, q, p, k in raw]
    fifo_at_flat = _fifo_reference(steps)
    cash = Fraction(0)
    qty = D(0)
    fills = []
    ref_qty, ref_cost, ref_realized = Fraction(0), Fraction(0), Fraction(0)  # average cost, exact
    for (side, q, p), fee, fifo in zip(steps, fees, fifo_at_flat):
        sq, fp = Fraction(q) * side.sign, Fraction(p)
        if ref_qty and (ref_qty > 0) != (sq > 0):
            closed = min(abs(sq), abs(ref_qty))
            direction = 1 if ref_qty > 0 else -1
            share = ref_cost * closed / abs(ref_qty)
            ref_realized += direction * closed * fp - share
            ref_cost -= share
            ref_qty -= direction * closed
            sq += direction * closed
        ref_qty += sq
        ref_cost += sq * fp
        f = fill(side, str(q), str(p), fee=str(fee))
        fills.append(f)
        tr.apply_fill(f)
        cash -= Fraction(q * side.sign) * Fraction(p)
        qty += q * side.sign
        assert tr.ledger.is_balanced()
        # every close realizes its lot's PnL at the average entry; only the cost share of a
        # partial close is rounded (to 1e-20), so the gap to the exact value stays far below a cent
        assert abs(Fraction(tr.realized_pnl()) - ref_realized) <= Fraction(len(fills), 10**20)
        assert tr.wallet("USDT") == D("10000") + tr.realized_pnl() - sum(fees[: len(fills)], D(0))
        if fifo is not None:  # flat: realized PnL is exactly the sum of the closed lots' PnL
            assert tr.position("BTCUSDT").quantity == 0
            assert Fraction(tr.realized_pnl()) == fifo == cash
    mark = D(mark_raw) / 10
    tr.set_mark("BTCUSDT", mark)
    pos = tr.position("BTCUSDT")
    assert pos.quantity == qty
    # realized + unrealized at mark = cash flows + position at mark, exactly (the cost shares
    # rounded at partial closes cancel out between the two)
    total = Fraction(pos.realized_pnl) + Fraction(pos.unrealized_pnl)  # type: ignore[arg-type]
    assert total == cash + Fraction(qty) * Fraction(mark)
    # replaying everything again changes nothing (dedupe), and the snapshot round-trips
    before = tr.to_dict()
    assert not any(tr.apply_fill(f) for f in fills)
    assert tr.to_dict() == before
    assert PositionTracker.from_dict(before).to_dict() == before


def test_tracker_rebuilt_from_snapshot_plus_journaled_fills(tmp_path: Path) -> None:
    clock = FakeClock()
    store, recovered = recover_state_dir(tmp_path, clock, generations=3)
    journal = recovered.journal
    live = PositionTracker()
    live.open_balance("USDT", D("1000"))
    writer = SnapshotWriter(store, lambda: {"tracker": live.to_dict()}, clock, 5.0, journal)
    sequence = [fill(Side.BUY, "0.004", "100.1", fee="0.0002"), fill(Side.BUY, "0.006", "100.3", fee="0.0003"),
                fill(Side.SELL, "0.003", "101", fee="0.00015"), fill(Side.SELL, "0.009", "99.5", fee="0.0004")]
    for n, f in enumerate(sequence):
        journal.record_fill(f)  # journaled as it arrives …
        live.apply_fill(f)
        if n == 1:
            writer.save_now()  # … and a snapshot in the middle
    journal.close()  # crash

    _, again = recover_state_dir(tmp_path, clock, generations=3)
    rebuilt = PositionTracker.from_dict(again.state["tracker"])
    for f in again.fills:
        rebuilt.apply_fill(f)
    assert [f.trade_id for f in again.fills] == [f.trade_id for f in sequence[2:]]
    assert rebuilt.to_dict() == live.to_dict()
    assert rebuilt.position("BTCUSDT").quantity == D("-0.002")
    assert not any(rebuilt.apply_fill(f) for f in sequence)  # a REST re-read of the same trades is harmless


def test_open_quantities_are_the_positions_figures() -> None:
    tr = PositionTracker()
    tr.apply_fill(fill(Side.BUY, "2", "100", symbol="ETHUSDT"))
    tr.apply_fill(fill(Side.BUY, "1", "103", symbol="ETHUSDT"))
    tr.apply_fill(fill(Side.SELL, "0.3", "7.77", symbol="ADAUSDT"))
    tr.apply_fill(fill(Side.BUY, "1", "50", symbol="BTCUSDT"))
    tr.apply_fill(fill(Side.SELL, "1", "51", symbol="BTCUSDT"))  # flat: not listed
    expected = [(s, tr.position(s).quantity, tr.position(s).avg_entry) for s in tr.symbols() if tr.position(s).quantity]
    assert list(tr.open_quantities()) == expected == [("ADAUSDT", D("-0.3"), D("7.77")), ("ETHUSDT", D(3), D(101))]
