"""PositionTracker: positions, PnL, fees and funding from what the exchange reports — never assumed.

Inputs: ``core.types.Fill`` (deduplicated by ``(order_id, trade_id)``: Binance reports a trade
in TRADE_LITE, in ORDER_TRADE_UPDATE and again in userTrades), funding from
``core.events.AccountUpdate`` (reason ``FUNDING_FEE``; its ``bc`` is the fee) or from
``core.types.Income`` lines, and external balance changes (deposits, transfers).

Per symbol (one-way mode) it keeps the signed quantity and the *cost basis* (Σ signed qty ×
price of what is open). The average entry is cost / quantity, as Binance computes it. A
reducing fill realizes ``closed × price − closed share of the cost``; a fill that goes through
zero is split into a full close (exact) and a new opening at the same price. Only partial
closes divide, at 50 significant digits, and the last close of a position takes whatever cost
remains, so over any round trip the realized PnL equals the cash flows exactly.

Everything is also booked in a double-entry ``Ledger`` (see ``croupier/ledger.py``) whose wallet
account must match the exchange's wallet balance to the cent (``reconcile_wallet``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Any

from core.errors import StateError
from core.events import AccountUpdate
from core.types import ZERO, Fill, Income, Side
from croupier.ledger import (
    CAPITAL,
    EXACT,
    FEES,
    WALLET,
    Ledger,
    capital_account,
    LedgerLeg,
    contract_account,
    funding_account,
    pnl_account,
    position_account,
)

log = logging.getLogger(__name__)

FUNDING_FEE = "FUNDING_FEE"
# ACCOUNT_UPDATE reasons / income types whose balance change is money moving in or out of the
# account, not trading: booked against ``capital``. ORDER changes come through fills instead.
EXTERNAL_REASONS = frozenset({
    "DEPOSIT", "WITHDRAW", "WITHDRAW_REJECT", "ADJUSTMENT", "INSURANCE_CLEAR", "ADMIN_DEPOSIT",
    "ADMIN_WITHDRAW", "MARGIN_TRANSFER", "ASSET_TRANSFER", "TRANSFER", "COIN_SWAP_DEPOSIT",
    "COIN_SWAP_WITHDRAW", "AUTO_EXCHANGE", "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT",
})
# Income lines that duplicate what fills already carry.
FILL_INCOME_TYPES = frozenset({"REALIZED_PNL", "COMMISSION"})
_SPLIT = Context(prec=50)
# Partial closes take a proportional share of the cost basis; the share is rounded to this
# (far below a cent) so every later sum stays exact in the ledger's 60-digit context.
COST_QUANTUM = Decimal("1E-20")


@dataclass(slots=True)
class _SymbolBook:
    quantity: Decimal = ZERO  # signed: + long, - short
    cost: Decimal = ZERO  # signed cost basis of the open quantity
    realized: Decimal = ZERO
    exchange_realized: Decimal = ZERO  # Σ Binance's own ``rp``, to compare
    funding: Decimal = ZERO
    commissions: dict[str, Decimal] = field(default_factory=dict)
    closed_trades: int = 0
    fills: int = 0
    mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PositionView:
    """A read-only view of one symbol's position and PnL."""

    symbol: str
    quantity: Decimal
    avg_entry: Decimal | None
    cost: Decimal
    realized_pnl: Decimal
    exchange_realized_pnl: Decimal
    unrealized_pnl: Decimal | None  # None until a mark price is known
    funding: Decimal
    commissions: tuple[tuple[str, Decimal], ...]
    fills: int

    @property
    def side(self) -> Side | None:
        return Side.BUY if self.quantity > 0 else Side.SELL if self.quantity < 0 else None


@dataclass(frozen=True, slots=True)
class WalletCheck:
    asset: str
    ours: Decimal
    exchange: Decimal
    tolerance: Decimal

    @property
    def difference(self) -> Decimal:
        return self.ours - self.exchange

    @property
    def ok(self) -> bool:
        return abs(self.difference) <= self.tolerance


def _share(cost: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """cost × part / whole at 50 digits, rounded to COST_QUANTUM (the only rounding there is)."""
    with localcontext(_SPLIT):  # rounds, by design (unlike EXACT)
        return (cost * part / whole).quantize(COST_QUANTUM)


class PositionTracker:
    """Positions and money from fills, funding and balance changes; the ledger keeps it honest."""

    def __init__(
        self,
        *,
        quote_asset: str = "USDT",
        quote_assets: dict[str, str] | None = None,
        dedupe_keys: int = 5000,
        keep_postings: int = 500,
    ) -> None:
        if dedupe_keys < 1:
            raise ValueError("dedupe_keys must be at least 1")
        self.quote_asset = quote_asset
        self._quote_assets = dict(quote_assets or {})
        self._books: dict[str, _SymbolBook] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedupe_keys = dedupe_keys
        self.ledger = Ledger(keep_postings=keep_postings)
        self.duplicates = 0

    # -- inputs ---------------------------------------------------------------------------

    def open_balance(self, asset: str, amount: Decimal, *, time_ms: int = 0, ref: str = "opening") -> None:
        """Book money already in the wallet when tracking starts (against ``capital``)."""
        self.ledger.post(ref, time_ms, [LedgerLeg(WALLET, asset, amount), LedgerLeg(CAPITAL, asset, -amount)],
                         "opening balance")

    def apply_fill(self, fill: Fill) -> bool:
        """Apply one trade; False (and nothing changes) for a fill already applied."""
        if fill.quantity <= 0 or fill.price <= 0:
            raise ValueError(f"fill {fill.key} has non-positive quantity/price: {fill.quantity} @ {fill.price}")
        if not self._first_time(f"fill:{fill.order_id}:{fill.trade_id}"):
            return False
        book = self._books.setdefault(fill.symbol, _SymbolBook())
        with localcontext(EXACT):
            legs = self._book_fill(book, fill)
        self.ledger.post(f"fill:{fill.order_id}:{fill.trade_id}", fill.time_ms, legs, fill.symbol)
        return True

    def _book_fill(self, book: _SymbolBook, fill: Fill) -> list[LedgerLeg]:
        """Update the symbol's book for ``fill`` and return the ledger legs (exact arithmetic)."""
        quote = self.quote_of(fill.symbol)
        signed = fill.quantity * fill.side.sign
        legs: list[LedgerLeg] = []
        remaining = signed
        if book.quantity and (book.quantity > 0) != (signed > 0):  # reduces (maybe through zero)
            closed = min(abs(signed), abs(book.quantity))
            if closed == abs(book.quantity):
                removed = book.cost  # full close: no division, exact
            else:
                removed = _share(book.cost, closed, abs(book.quantity))
            direction = 1 if book.quantity > 0 else -1
            realized = direction * closed * fill.price - removed
            book.quantity += closed * -direction
            book.cost -= removed
            book.realized += realized
            book.closed_trades += 1
            remaining = signed + closed * direction
            legs += [
                LedgerLeg(position_account(fill.symbol), quote, -removed),
                LedgerLeg(contract_account(fill.symbol), quote, removed),
                LedgerLeg(WALLET, quote, realized),
                LedgerLeg(pnl_account(fill.symbol), quote, -realized),
            ]
        if remaining:
            opened_cost = remaining * fill.price
            book.quantity += remaining
            book.cost += opened_cost
            legs += [
                LedgerLeg(position_account(fill.symbol), quote, opened_cost),
                LedgerLeg(contract_account(fill.symbol), quote, -opened_cost),
            ]
        if fill.commission:
            asset = fill.commission_asset or quote
            book.commissions[asset] = book.commissions.get(asset, ZERO) + fill.commission
            legs += [LedgerLeg(WALLET, asset, -fill.commission), LedgerLeg(FEES, asset, fill.commission)]
        book.exchange_realized += fill.realized_pnl
        book.fills += 1
        return legs

    def apply_funding(self, symbol: str, asset: str, amount: Decimal, time_ms: int) -> bool:
        """Book a funding fee (negative = paid); deduplicated across the stream and income history.

        The key is (asset, amount, minute): the stream's FUNDING_FEE event may omit the symbol
        and has no transaction id, so the same payment reported by ``/fapi/v1/income`` is
        recognised by its amount and time. Two payments of exactly the same amount in the same
        minute would be taken for one; the wallet reconciliation would then show the difference.
        """
        if not self._first_time(f"funding:{asset}:{amount.normalize()}:{time_ms // 60_000}"):
            return False
        if symbol:
            book = self._books.setdefault(symbol, _SymbolBook())
            with localcontext(EXACT):
                book.funding += amount
        self.ledger.post(f"funding:{symbol}:{time_ms}", time_ms,
                         [LedgerLeg(WALLET, asset, amount), LedgerLeg(funding_account(symbol), asset, -amount)],
                         "funding fee")
        return True

    def apply_account_update(self, update: AccountUpdate) -> bool:
        """Funding and external transfers from ACCOUNT_UPDATE; ORDER updates are ignored (fills tell)."""
        time_ms = update.transaction_time_ms or update.event_time_ms
        if update.reason == FUNDING_FEE:
            if not update.balance_changes:
                log.warning("FUNDING_FEE account update without a balance change: cannot book it")
                return False
            applied = [self.apply_funding(update.symbol, asset, change, time_ms)
                       for asset, change in update.balance_changes if change]
            return any(applied)
        if update.reason in EXTERNAL_REASONS:
            changes = [(a, c) for a, c in update.balance_changes if c]
            if not changes or not self._first_time(f"account:{update.reason}:{time_ms}:{changes}"):
                return False
            for asset, change in changes:
                self.ledger.post(f"{update.reason}:{time_ms}", time_ms,
                                 [LedgerLeg(WALLET, asset, change), LedgerLeg(capital_account(update.reason), asset,
                                                                               -change)],
                                 update.reason)
            return True
        return False

    def apply_income(self, income: Income) -> bool:
        """Funding and transfers from the income history; fill-derived lines are skipped."""
        if income.income_type == FUNDING_FEE:
            return self.apply_funding(income.symbol, income.asset, income.income, income.time_ms)
        if income.income_type in FILL_INCOME_TYPES or income.income_type not in EXTERNAL_REASONS:
            return False
        if not self._first_time(f"income:{income.income_type}:{income.tran_id}:{income.symbol}"):
            return False
        self.ledger.post(f"income:{income.tran_id}", income.time_ms,
                         [LedgerLeg(WALLET, income.asset, income.income),
                          LedgerLeg(capital_account(income.income_type), income.asset, -income.income)],
                         income.income_type)
        return True

    def set_mark(self, symbol: str, mark: Decimal) -> None:
        if mark <= 0:
            raise ValueError(f"mark price must be positive, got {mark}")
        self._books.setdefault(symbol, _SymbolBook()).mark = mark

    # -- outputs -----------------------------------------------------------------------------

    def quote_of(self, symbol: str) -> str:
        return self._quote_assets.get(symbol, self.quote_asset)

    def symbols(self) -> list[str]:
        return sorted(self._books)

    def position(self, symbol: str) -> PositionView:
        book = self._books.get(symbol, _SymbolBook())
        avg = None
        if book.quantity:
            with localcontext(_SPLIT):
                avg = book.cost / book.quantity
        return PositionView(
            symbol, book.quantity, avg, book.cost, book.realized, book.exchange_realized,
            self.unrealized_pnl(symbol), book.funding, tuple(sorted(book.commissions.items())), book.fills,
        )

    def open_quantities(self) -> Iterator[tuple[str, Decimal, Decimal]]:
        """(symbol, quantity, average entry) of each open position in symbol order: ``position``'s
        figures without the rest of its view (asked for every decision's exposure)."""
        for symbol in sorted(self._books):
            book = self._books[symbol]
            if book.quantity:
                yield symbol, book.quantity, _SPLIT.divide(book.cost, book.quantity)

    def unrealized_pnl(self, symbol: str, mark: Decimal | None = None) -> Decimal | None:
        """quantity × mark − cost; None when no mark is known."""
        book = self._books.get(symbol)
        if book is None:
            return ZERO
        price = mark if mark is not None else book.mark
        if price is None:
            return None if book.quantity else ZERO
        # the context's own methods: what ``localcontext(EXACT)`` computes, without entering one
        # (asked per open position for every decision's equity)
        return EXACT.subtract(EXACT.multiply(book.quantity, price), book.cost)

    def realized_pnl(self, symbol: str | None = None) -> Decimal:
        books = [self._books[symbol]] if symbol else list(self._books.values())
        with localcontext(EXACT):
            return sum((b.realized for b in books), ZERO)

    def wallet(self, asset: str) -> Decimal:
        return self.ledger.balance(WALLET, asset)

    def equity(self, asset: str) -> Decimal | None:
        """Wallet plus unrealized PnL of the symbols quoted in ``asset`` (None if a mark is missing)."""
        total = self.wallet(asset)
        for symbol in self._books:
            if self.quote_of(symbol) != asset:
                continue
            upnl = self.unrealized_pnl(symbol)
            if upnl is None:
                return None
            total = EXACT.add(total, upnl)
        return total

    def reconcile_wallet(
        self, asset: str, exchange_balance: Decimal, tolerance: Decimal = Decimal("0.01")
    ) -> WalletCheck:
        """Compare our wallet with the exchange's (default: to the cent); logs a mismatch."""
        check = WalletCheck(asset, self.wallet(asset), exchange_balance, tolerance)
        if not check.ok:
            log.error("wallet %s differs from the exchange by %s (ours %s, exchange %s)",
                      asset, check.difference, check.ours, check.exchange)
        return check

    # -- dedupe --------------------------------------------------------------------------------

    def _first_time(self, key: str) -> bool:
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        while len(self._seen) > self._dedupe_keys:
            self._seen.popitem(last=False)
        return True

    # -- persistence -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for a snapshot (Decimals as strings)."""
        return {
            "quote_asset": self.quote_asset,
            "quote_assets": dict(self._quote_assets),
            "books": {
                symbol: {
                    "quantity": str(b.quantity), "cost": str(b.cost), "realized": str(b.realized),
                    "exchange_realized": str(b.exchange_realized), "funding": str(b.funding),
                    "commissions": {a: str(v) for a, v in b.commissions.items()},
                    "closed_trades": b.closed_trades, "fills": b.fills,
                    "mark": str(b.mark) if b.mark is not None else None,
                }
                for symbol, b in sorted(self._books.items())
            },
            "seen": list(self._seen),
            "ledger": self.ledger.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, dedupe_keys: int = 5000, keep_postings: int = 500) -> PositionTracker:
        try:
            tracker = cls(quote_asset=data["quote_asset"], quote_assets=data.get("quote_assets"),
                          dedupe_keys=dedupe_keys, keep_postings=keep_postings)
            for symbol, b in data["books"].items():
                tracker._books[symbol] = _SymbolBook(
                    Decimal(b["quantity"]), Decimal(b["cost"]), Decimal(b["realized"]),
                    Decimal(b["exchange_realized"]), Decimal(b["funding"]),
                    {a: Decimal(v) for a, v in b["commissions"].items()}, int(b["closed_trades"]), int(b["fills"]),
                    Decimal(b["mark"]) if b.get("mark") is not None else None,
                )
            for key in data.get("seen", [])[-dedupe_keys:]:
                tracker._seen[str(key)] = None
            tracker.ledger = Ledger.from_dict(data["ledger"], keep_postings=keep_postings)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise StateError(f"position tracker state unreadable: {exc}") from exc
        return tracker
