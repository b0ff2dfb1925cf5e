"""A small double-entry ledger: every posting balances to zero, per asset, or it is refused.

Amounts are debits when positive and credits when negative. The accounts the position tracker
uses (one-way USDⓈ-M futures, quote asset Q):

==========================  =====  ============================================================
account                     asset  meaning
==========================  =====  ============================================================
``wallet``                  any    the exchange wallet (reconciles with Binance's walletBalance)
``position:<SYMBOL>``       Q      cost basis of the open position (signed: short = negative)
``contract:<SYMBOL>``       Q      the contract's financing of that position (−cost): a futures
                                   position is self-financing, opening one moves no wallet money
``pnl:<SYMBOL>``            Q      realized trading PnL (credit = profit)
``fees``                    any    commissions, in the asset they were charged in
``funding:<SYMBOL>``        any    funding fees (credit = received)
``capital``                 any    money from outside: the opening balance
``capital:<REASON>``         any    later balance changes that are not trading (DEPOSIT, TRANSFER …)
==========================  =====  ============================================================

So ``wallet = −(capital* + pnl + fees + funding)`` holds by construction, and the wallet balance
can be checked against the exchange's to the cent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from typing import Any

from core.errors import StateError
from core.types import ZERO

EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
"""Arithmetic context for money sums: 60 digits, and any rounding raises instead of happening."""

WALLET = "wallet"
FEES = "fees"
CAPITAL = "capital"


def position_account(symbol: str) -> str:
    return f"position:{symbol}"


def contract_account(symbol: str) -> str:
    return f"contract:{symbol}"


def pnl_account(symbol: str) -> str:
    return f"pnl:{symbol}"


def capital_account(reason: str) -> str:
    return f"{CAPITAL}:{reason}"


def funding_account(symbol: str) -> str:
    return f"funding:{symbol or '?'}"


@dataclass(frozen=True, slots=True)
class LedgerLeg:
    account: str
    asset: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Posting:
    """One balanced set of legs, with what caused it (``ref``: a fill key, a funding key …)."""

    ref: str
    time_ms: int
    legs: tuple[LedgerLeg, ...]
    memo: str = ""


class UnbalancedPosting(ValueError):
    """A posting whose legs do not sum to zero in some asset (a bug; nothing was booked)."""


class Ledger:
    """Balances by (account, asset) and the most recent postings (bounded)."""

    def __init__(self, *, keep_postings: int = 500) -> None:
        self._balances: dict[tuple[str, str], Decimal] = {}
        self.recent: deque[Posting] = deque(maxlen=keep_postings)
        self.postings = 0

    def post(self, ref: str, time_ms: int, legs: Iterable[LedgerLeg], memo: str = "") -> Posting:
        """Book ``legs`` atomically; raises ``UnbalancedPosting`` if any asset does not sum to zero."""
        kept = tuple(leg for leg in legs if leg.amount != 0)
        sums: dict[str, Decimal] = {}
        with localcontext(EXACT):
            for leg in kept:
                if not isinstance(leg.amount, Decimal) or not leg.amount.is_finite():
                    raise UnbalancedPosting(f"{ref}: amount {leg.amount!r} of {leg.account} is not a finite Decimal")
                sums[leg.asset] = sums.get(leg.asset, ZERO) + leg.amount
            off = {asset: total for asset, total in sums.items() if total != 0}
            if off:
                raise UnbalancedPosting(f"{ref}: legs do not balance: {off}")
            updated = {(leg.account, leg.asset): ZERO for leg in kept}
            for key in updated:
                updated[key] = self._balances.get(key, ZERO)
            for leg in kept:  # computed fully before anything is stored: all or nothing
                updated[(leg.account, leg.asset)] += leg.amount
        self._balances.update(updated)
        posting = Posting(ref, time_ms, kept, memo)
        self.recent.append(posting)
        self.postings += 1
        return posting

    def balance(self, account: str, asset: str) -> Decimal:
        return self._balances.get((account, asset), ZERO)

    def balances(self) -> dict[tuple[str, str], Decimal]:
        return dict(self._balances)

    def assets(self) -> set[str]:
        return {asset for _, asset in self._balances}

    def total(self, asset: str) -> Decimal:
        """Sum of every account in ``asset``: always exactly zero."""
        with localcontext(EXACT):
            return sum((v for (_, a), v in self._balances.items() if a == asset), ZERO)

    def is_balanced(self) -> bool:
        return all(self.total(asset) == 0 for asset in self.assets())

    def to_dict(self) -> dict[str, Any]:
        return {
            "balances": [[account, asset, str(amount)] for (account, asset), amount in sorted(self._balances.items())],
            "postings": self.postings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, keep_postings: int = 500) -> Ledger:
        ledger = cls(keep_postings=keep_postings)
        for account, asset, amount in data.get("balances", []):
            ledger._balances[(str(account), str(asset))] = Decimal(amount)
        ledger.postings = int(data.get("postings", 0))
        if not ledger.is_balanced():
            raise StateError("restored ledger does not balance: the snapshot is inconsistent")
        return ledger
