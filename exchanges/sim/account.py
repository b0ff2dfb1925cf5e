"""Positions, margin and the wallet ledger of the simulated account (pure, Decimal only).

Money rules (USDT-margined, one-way mode):

* A fill that adds to a position moves the entry price to the quantity-weighted average;
  a fill that reduces it realizes ``(fill − entry) × closed qty × sign`` at the old entry.
* Commission = fill notional × maker/taker rate, always paid from the wallet.
* Funding at each settlement: ``−position qty × mark × rate`` (longs pay a positive rate).
* Every change to the wallet is one ``LedgerEntry`` (REALIZED_PNL, COMMISSION, FUNDING_FEE),
  so ``wallet == initial + Σ ledger`` holds at all times (tested as a property).
* Initial margin = |notional| / leverage; maintenance margin = |notional| × the symbol's
  maintenance rate (``rules.py``). Isolated positions carry their own wallet
  (entry margin + realized PnL − fees on that symbol); cross positions share the wallet.
* Simplified liquidation (documented, not Binance's insurance-fund process): an isolated
  position is closed at mark when ``isolated wallet + unrealized PnL ≤ maintenance margin``;
  all cross positions are closed at mark when ``cross wallet + Σ cross unrealized PnL ≤
  Σ cross maintenance margin``. No liquidation fee beyond the taker commission. A MARGIN_CALL
  is pushed once when cross maintenance margin reaches 80 % of the cross margin balance
  (re-armed when it falls back below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.types import ZERO, MarginType

AMOUNT = Decimal("0.00000001")  # USDT amounts are booked to 8 decimals, as Binance reports them


def amount(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT)


@dataclass(slots=True)
class SimPosition:
    """One symbol's position; ``qty`` signed (+ long, − short)."""

    symbol: str
    leverage: int
    margin_type: MarginType = MarginType.CROSSED
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    cum_realized: Decimal = ZERO  # Binance's "cr": accumulated realized, before fees
    fees_paid: Decimal = ZERO  # commission on the current position (for break-even)
    update_time_ms: int = 0

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.entry_price) * self.qty if self.qty else ZERO

    def notional(self, mark: Decimal) -> Decimal:
        return self.qty * mark

    def initial_margin(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark / self.leverage

    def break_even(self) -> Decimal:
        if not self.qty:
            return ZERO
        return amount(self.entry_price + self.fees_paid / self.qty)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One wallet movement, as GET /fapi/v1/income reports it."""

    tran_id: int
    symbol: str
    income_type: str  # REALIZED_PNL | COMMISSION | FUNDING_FEE
    amount: Decimal
    time_ms: int
    trade_id: int = 0
    info: str = ""


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What one fill did to the account."""

    realized_pnl: Decimal
    commission: Decimal
    closed_qty: Decimal
    opened_qty: Decimal


@dataclass(slots=True)
class Account:
    """Wallet, positions and ledger; the engine is its only writer."""

    initial_balance: Decimal
    default_leverage: int
    wallet: Decimal = ZERO
    positions: dict[str, SimPosition] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    dual_side: bool = False
    folded: Decimal = ZERO  # sum of ledger entries already forgotten (history retention)
    _tran_seq: int = 9_000_000_000
    _isolated: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.wallet = self.initial_balance

    def position(self, symbol: str) -> SimPosition:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = SimPosition(symbol, self.default_leverage)
        return pos

    def _book(self, symbol: str, kind: str, value: Decimal, time_ms: int, trade_id: int = 0,
              info: str = "") -> None:
        if not value:
            return
        self._tran_seq += 1
        self.ledger.append(LedgerEntry(self._tran_seq, symbol, kind, value, time_ms, trade_id, info))
        self.wallet += value

    def apply_fill(self, symbol: str, signed_qty: Decimal, price: Decimal, fee_rate: Decimal,
                   time_ms: int, trade_id: int) -> FillOutcome:
        """Apply one fill of ``signed_qty`` (+ buy, − sell) at ``price``."""
        pos = self.position(symbol)
        commission = amount(abs(signed_qty) * price * fee_rate)
        realized = ZERO
        closed = ZERO
        opened = signed_qty
        if pos.qty and (pos.qty > 0) != (signed_qty > 0):
            closed = min(abs(pos.qty), abs(signed_qty))
            direction = 1 if pos.qty > 0 else -1
            realized = amount((price - pos.entry_price) * closed * direction)
            remaining = abs(pos.qty) - closed
            share = closed / abs(pos.qty)
            released_iso = pos.isolated_wallet * share if pos.margin_type is MarginType.ISOLATED else ZERO
            pos.fees_paid -= pos.fees_paid * share
            pos.qty = remaining * direction
            opened = signed_qty + closed * direction  # what is left after closing
            if pos.margin_type is MarginType.ISOLATED:
                pos.isolated_wallet -= released_iso
            if not pos.qty:
                pos.entry_price = ZERO
                pos.fees_paid = ZERO
                pos.isolated_wallet = ZERO
        if opened:
            new_qty = pos.qty + opened
            pos.entry_price = amount((pos.entry_price * abs(pos.qty) + price * abs(opened)) / abs(new_qty))
            pos.qty = new_qty
            pos.fees_paid += abs(opened) * price * fee_rate
            if pos.margin_type is MarginType.ISOLATED:
                pos.isolated_wallet += abs(opened) * price / pos.leverage
        pos.cum_realized += realized
        pos.update_time_ms = time_ms
        self._book(symbol, "REALIZED_PNL", realized, time_ms, trade_id)
        self._book(symbol, "COMMISSION", -commission, time_ms, trade_id)
        return FillOutcome(realized, commission, closed, abs(opened))

    def apply_funding(self, symbol: str, mark: Decimal, rate: Decimal, time_ms: int) -> Decimal:
        """Settle funding for ``symbol``; returns the wallet change (0 when flat)."""
        pos = self.positions.get(symbol)
        if pos is None or not pos.qty:
            return ZERO
        paid = amount(-pos.qty * mark * rate)
        self._book(symbol, "FUNDING_FEE", paid, time_ms)
        if pos.margin_type is MarginType.ISOLATED:
            pos.isolated_wallet += paid
        pos.update_time_ms = time_ms
        return paid

    # -- aggregates ------------------------------------------------------------------

    def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        self.position(symbol).margin_type = margin_type
        if margin_type is MarginType.ISOLATED:
            self._isolated.add(symbol)
        else:
            self._isolated.discard(symbol)

    def isolated_total(self) -> Decimal:
        # Only isolated symbols are summed: this runs on every price update.
        return sum((self.positions[s].isolated_wallet for s in self._isolated), ZERO)

    def cross_wallet(self) -> Decimal:
        return self.wallet - self.isolated_total()

    def ledger_total(self) -> Decimal:
        """Σ ledger since the start (entries folded by ``forget_before`` included)."""
        return self.folded + sum((e.amount for e in self.ledger), ZERO)

    def forget_before(self, time_ms: int) -> None:
        """Drop ledger entries older than ``time_ms``, keeping their sum in ``folded``."""
        if self.ledger and self.ledger[0].time_ms < time_ms:
            old = [e for e in self.ledger if e.time_ms < time_ms]
            self.folded += sum((e.amount for e in old), ZERO)
            self.ledger = [e for e in self.ledger if e.time_ms >= time_ms]
