"""Protocols the runtime depends on; implementations live in ``exchanges/`` and ``state/``.

``ExchangePort`` is venue-neutral in shape (kernel records in, kernel records out) so that a
second venue, or the in-process simulator, can stand behind it. Errors are the kernel's
(``core.errors``); an implementation never leaks its transport's exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.events import MarketEvent, UserEvent
from core.types import (
    AlgoOrder,
    AlgoOrderRequest,
    Balance,
    Candle,
    CommissionRate,
    Fill,
    FundingRate,
    Income,
    MarginType,
    MarkPrice,
    Order,
    OrderRequest,
    Position,
    SymbolRules,
    Timeframe,
)


@runtime_checkable
class Clock(Protocol):
    """The only source of time. ``now_ms`` is wall/simulated time, ``monotonic`` is for durations."""

    def now_ms(self) -> int: ...

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@runtime_checkable
class ExchangePort(Protocol):
    """Everything the engine and the croupier need from a futures venue (one-way mode)."""

    # -- reference data -------------------------------------------------------------
    async def server_time_ms(self) -> int: ...

    async def symbol_rules(self, symbols: Sequence[str] | None = None) -> dict[str, SymbolRules]:
        """Filters for the given symbols (all when None)."""
        ...

    async def klines(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Closed candles only, oldest first; paginates past the venue's per-call maximum."""
        ...

    async def mark_price(self, symbol: str) -> MarkPrice: ...

    async def funding_rates(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 100
    ) -> list[FundingRate]: ...

    async def commission_rate(self, symbol: str) -> CommissionRate: ...

    # -- regular orders --------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order: ...

    async def query_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order: ...

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def cancel_all_orders(self, symbol: str) -> None: ...

    # -- conditional (algo) orders -----------------------------------------------------
    async def place_algo_order(self, request: AlgoOrderRequest) -> AlgoOrder: ...

    async def cancel_algo_order(
        self, symbol: str, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> None: ...

    async def query_algo_order(
        self, symbol: str, *, algo_id: int | None = None, client_algo_id: str | None = None
    ) -> AlgoOrder: ...

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]: ...

    async def cancel_all_algo_orders(self, symbol: str) -> None: ...

    # -- account ---------------------------------------------------------------------
    async def positions(self, symbol: str | None = None) -> list[Position]:
        """Non-flat positions (and flat ones the venue chooses to report)."""
        ...

    async def balances(self) -> list[Balance]: ...

    async def set_leverage(self, symbol: str, leverage: int) -> int: ...

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        """Idempotent: 'no need to change' counts as success."""
        ...

    async def get_position_mode(self) -> bool:
        """True when the account is in hedge (dual-side) mode."""
        ...

    async def set_position_mode(self, dual_side: bool) -> None:
        """Idempotent: 'no need to change' counts as success."""
        ...

    async def user_trades(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 500
    ) -> list[Fill]: ...

    async def income(
        self,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> list[Income]: ...

    # -- streams -----------------------------------------------------------------------
    def market_stream(
        self, symbols: Sequence[str], timeframes: Sequence[Timeframe], *, mark_price: bool = True
    ) -> AsyncIterator[MarketEvent]:
        """Closed candles (gap-free: missed bars are backfilled or reported as StreamGap)."""
        ...

    def user_stream(self) -> AsyncIterator[UserEvent]:
        """Order, algo and account events; emits ReconcileNeeded when events may be lost."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Atomic, generational persistence of the engine's state document."""

    def save(self, document: dict[str, Any]) -> Path: ...

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest valid snapshot and its path, or None when there is none."""
        ...

