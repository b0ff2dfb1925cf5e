"""Events that flow through the engine, one frozen record per kind.

Market side: ``CandleClosed``, ``MarkPriceUpdate``, ``StreamGap``.
Decision side: ``SensorReading`` → ``Decision`` or ``Skip``.
User-data side: ``OrderUpdate`` (with an optional ``Fill``), ``FillUpdate``, ``AlgoUpdate``,
``AccountUpdate``, ``AccountConfigUpdate``, ``MarginCall``, ``ReconcileNeeded``.

Sensor signals are floats (numpy territory); everything that touches money is Decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from core.types import (
    AlgoOrder,
    Balance,
    Candle,
    ExecutionType,
    Fill,
    Order,
    Position,
    Side,
    Timeframe,
)

# ------------------------------------------------------------------------- market


@dataclass(frozen=True, slots=True)
class CandleClosed:
    """A closed bar arrived (from a stream, a backfill, or a replay)."""

    candle: Candle
    received_ms: int = 0  # local clock when it arrived; decision latency starts here
    backfilled: bool = False
    # Real monotonic seconds (time.monotonic) when its frame came off the socket, before any
    # queue: the start of the decision latency whatever the session clock (0.0 = not known).
    received_s: float = 0.0


@dataclass(frozen=True, slots=True)
class MarkPriceUpdate:
    symbol: str
    mark_price: Decimal
    index_price: Decimal
    funding_rate: Decimal
    next_funding_time_ms: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class StreamGap:
    """Closed candles between ``from_open_ms`` and ``to_open_ms`` (inclusive) are missing
    and could not be backfilled; sensors must treat the window as broken."""

    symbol: str
    timeframe: Timeframe
    from_open_ms: int
    to_open_ms: int
    reason: str


# ----------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One sensor's vote on one closed bar.

    ``signal`` in [-1, 1]: sign = side, magnitude = strength, 0 = no vote.
    ``signal is None`` means *missing* (not warmed up, worker died, sensor raised) — never
    to be treated as neutral.
    """

    sensor: str
    symbol: str
    timeframe: Timeframe
    open_time_ms: int
    signal: float | None
    tp_fraction: float
    sl_fraction: float
    context: bool = False  # context sensors feed the HTF filter instead of voting

    @property
    def is_missing(self) -> bool:
        return self.signal is None or math.isnan(self.signal)


@dataclass(frozen=True, slots=True)
class Vote:
    """A sensor's weighted contribution to a decision."""

    sensor: str
    timeframe: Timeframe
    signal: float
    score: float
    weight: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The player's verdict for one symbol at one closed bar: open a bracket."""

    symbol: str
    side: Side
    open_time_ms: int
    confidence: float
    tp_fraction: float
    sl_fraction: float
    votes: tuple[Vote, ...]
    reference_price: Decimal
    decided_ms: int = 0
    candle_received_ms: int = 0


@dataclass(frozen=True, slots=True)
class Skip:
    """The player looked at a bar and chose not to act; ``reason`` is a short stable key."""

    symbol: str
    open_time_ms: int
    reason: str
    detail: str = ""


# ----------------------------------------------------------------------- user data


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """ORDER_TRADE_UPDATE (or TRADE_LITE): the order's new state and, for a trade, its fill."""

    order: Order
    execution_type: ExecutionType
    event_time_ms: int
    fill: Fill | None = None
    expiry_reason: str = ""


@dataclass(frozen=True, slots=True)
class FillUpdate:
    """TRADE_LITE: a fill reported ahead of its ORDER_TRADE_UPDATE.

    It carries no commission and no realised PnL (zero here); the ``OrderUpdate.fill`` with the
    same (orderId, tradeId) that follows is the complete record to book money from.
    """

    fill: Fill
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class AlgoUpdate:
    """ALGO_UPDATE: a conditional order changed state; ``algo.reason`` holds ``rm``."""

    algo: AlgoOrder
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """ACCOUNT_UPDATE: balances and (changed) positions; ``reason`` is Binance's ``m``."""

    reason: str
    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]
    event_time_ms: int
    transaction_time_ms: int = 0
    symbol: str = ""  # set for FUNDING_FEE when Binance sends it
    balance_changes: tuple[tuple[str, Decimal], ...] = ()  # (asset, bc) excluding PnL & fees


@dataclass(frozen=True, slots=True)
class AccountConfigUpdate:
    symbol: str
    leverage: int | None
    multi_assets: bool | None
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class MarginCall:
    symbols: tuple[str, ...]
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class ReconcileNeeded:
    """User events may have been lost (reconnect, listenKey expiry): re-read the account."""

    reason: str
    event_time_ms: int


UserEvent = OrderUpdate | FillUpdate | AlgoUpdate | AccountUpdate | AccountConfigUpdate | MarginCall | ReconcileNeeded
MarketEvent = CandleClosed | MarkPriceUpdate | StreamGap
