"""Emergency sweep: cancel every order and flatten every position, then check it is all gone.

Usable with or without a running session (``python main.py sweep [--all]``). Each pass:

1. read positions, open regular orders and open algo orders (one call each, all symbols);
2. on every target symbol, cancel all regular and all algo orders;
3. close every non-flat position with a reduce-only MARKET order (rounded down to the market
   lot step; a position above the per-order maximum takes more than one pass);
4. re-read: flat with nothing open → done. Otherwise another pass, up to ``passes``.

Targets are the given symbols (those Casino traded), or with ``symbols=None`` every symbol with
anything open on the account. Errors never stop the sweep; they are collected in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import ExchangeError
from core.ports import ExchangePort
from core.types import OrderRequest, OrderType, Side

log = logging.getLogger(__name__)

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(slots=True)
class SweepResult:
    positions_closed: int = 0
    orders_cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    passes: int = 0
    flat: bool = False
    remaining: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"positions_closed": self.positions_closed, "orders_cancelled": self.orders_cancelled,
                "errors": list(self.errors), "passes": self.passes, "flat": self.flat,
                "remaining": list(self.remaining)}


def _sweep_client_id(symbol: str, number: int, pass_no: int) -> str:
    # "x" marks a sweep order (never a bracket id); unique per run, pass and symbol; ≤ 36 chars.
    digits = []
    while number:
        number, rem = divmod(number, 36)
        digits.append(_B36[rem])
    return f"xsw{''.join(reversed(digits)) or '0'}{pass_no}{symbol}"[:36]


async def sweep(exchange: ExchangePort, symbols: Sequence[str] | None, *, passes: int = 3) -> SweepResult:
    """Cancel all orders and flatten all positions on ``symbols`` (None = everything open)."""
    result = SweepResult()
    wanted = set(symbols) if symbols is not None else None
    run_id = await _run_id(exchange)
    for pass_no in range(1, passes + 1):
        result.passes = pass_no
        try:
            positions = [p for p in await exchange.positions() if not p.is_flat]
            orders = await exchange.open_orders()
            algos = await exchange.open_algo_orders()
        except ExchangeError as exc:
            result.errors.append(f"pass {pass_no}: reading the account failed: {exc}")
            continue
        in_scope = (lambda s: True) if wanted is None else (lambda s: s in wanted)  # noqa: E731
        order_symbols = {o.symbol for o in orders if in_scope(o.symbol)}
        algo_symbols = {a.symbol for a in algos if in_scope(a.symbol)}
        for symbol in sorted(order_symbols):
            try:
                await exchange.cancel_all_orders(symbol)
                result.orders_cancelled += sum(1 for o in orders if o.symbol == symbol)
            except ExchangeError as exc:
                result.errors.append(f"cancel orders {symbol}: {exc}")
        for symbol in sorted(algo_symbols):
            try:
                await exchange.cancel_all_algo_orders(symbol)
                result.orders_cancelled += sum(1 for a in algos if a.symbol == symbol)
            except ExchangeError as exc:
                result.errors.append(f"cancel algo orders {symbol}: {exc}")
        targets = [p for p in positions if in_scope(p.symbol)]
        rules = {}
        if targets:
            try:
                rules = await exchange.symbol_rules(sorted({p.symbol for p in targets}))
            except ExchangeError as exc:
                result.errors.append(f"symbol rules: {exc}")
        for position in targets:
            side = Side.SELL if position.quantity > 0 else Side.BUY
            qty = abs(position.quantity)
            if position.symbol in rules:
                qty = rules[position.symbol].round_qty(qty, market=True)
            if qty <= 0:
                result.errors.append(f"{position.symbol}: position {position.quantity} below one lot step")
                continue
            cid = _sweep_client_id(position.symbol, run_id, pass_no)
            try:
                await exchange.place_order(OrderRequest(position.symbol, side, OrderType.MARKET, qty, cid,
                                                        reduce_only=True))
                result.positions_closed += 1
                log.warning("sweep: closed %s %s %s", position.symbol, side.value, qty)
            except ExchangeError as exc:
                result.errors.append(f"flatten {position.symbol}: {exc}")
        try:
            left = [p.symbol for p in await exchange.positions() if not p.is_flat and in_scope(p.symbol)]
            left += [f"order {o.symbol}" for o in await exchange.open_orders() if in_scope(o.symbol)]
            left += [f"algo {a.symbol}" for a in await exchange.open_algo_orders() if in_scope(a.symbol)]
        except ExchangeError as exc:
            result.errors.append(f"pass {pass_no}: verification failed: {exc}")
            continue
        result.remaining = left
        if not left:
            result.flat = True
            return result
    return result


async def _run_id(exchange: ExchangePort) -> int:
    try:
        return await exchange.server_time_ms() % 36**6
    except ExchangeError:
        return 0
