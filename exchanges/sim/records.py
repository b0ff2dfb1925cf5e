"""The simulator's own order/algo records and the events the engine emits.

Mutable ``SimOrder``/``SimAlgo`` live inside the engine; every emitted event carries a
*copy* taken at emission time, so renderers (server JSON, local kernel events) see the state
as it was when the event happened.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar
from decimal import Decimal

from core.types import (
    ZERO,
    AlgoStatus,
    ExecutionType,
    MarginType,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    TimeInForce,
    WorkingType,
)


@dataclass(slots=True)
class SimOrder:
    """A regular order in the simulated matching engine."""

    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    orig_qty: Decimal
    price: Decimal  # 0 for MARKET
    time_in_force: TimeInForce
    reduce_only: bool
    time_ms: int
    status: OrderStatus = OrderStatus.NEW
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_ms: int = 0
    orig_type: OrderType | None = None
    close_position: bool = False
    stop_price: Decimal = ZERO
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    price_protect: bool = False
    position_side: PositionSide = PositionSide.BOTH
    expiry_reason: str = "0"
    algo_id: int = 0  # parent algo order when this is a triggered child
    last_trade_ms: int = 0
    good_till_ms: int = 0  # GTD orders only

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def snapshot(self) -> SimOrder:
        return _copy_order(self)


@dataclass(slots=True)
class SimAlgo:
    """A conditional order in the simulated Algo Service."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal  # 0 for closePosition (sized on trigger)
    trigger_price: Decimal
    price: Decimal
    working_type: WorkingType
    close_position: bool
    reduce_only: bool
    time_in_force: TimeInForce
    price_protect: bool
    create_ms: int
    status: AlgoStatus = AlgoStatus.NEW
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    activated: bool = False
    extreme: Decimal = ZERO  # trailing: best price since activation
    actual_order_id: int | None = None
    actual_type: OrderType | None = None
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    reason: str = ""
    update_ms: int = 0
    trigger_ms: int = 0
    position_side: PositionSide = PositionSide.BOTH

    def snapshot(self) -> SimAlgo:
        return _copy_algo(self)


_R = TypeVar("_R")


def _shallow_copier(cls: type[_R]) -> Callable[[_R], _R]:
    """``copy.copy`` for a slotted dataclass whose fields are all init fields: the class called
    with the record's own field values (``copy.copy`` goes through ``__reduce_ex__`` and was a
    tenth of a fast replay's trade phase, one snapshot per emitted event)."""
    values = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]
    return lambda record: cls(*values(record))


_copy_order = _shallow_copier(SimOrder)
_copy_algo = _shallow_copier(SimAlgo)


@dataclass(frozen=True, slots=True)
class TradeInfo:
    """One fill of one order."""

    trade_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A fill as GET /fapi/v1/userTrades lists it."""

    symbol: str
    order_id: int
    side: Side
    trade: TradeInfo
    time_ms: int
    position_side: PositionSide = PositionSide.BOTH


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order: SimOrder
    execution: ExecutionType
    time_ms: int
    trade: TradeInfo | None = None


@dataclass(frozen=True, slots=True)
class AlgoEvent:
    algo: SimAlgo
    time_ms: int


@dataclass(frozen=True, slots=True)
class PositionState:
    """A position as ACCOUNT_UPDATE reports it."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    break_even: Decimal
    cum_realized: Decimal
    unrealized: Decimal
    margin_type: MarginType
    isolated_wallet: Decimal
    mark_price: Decimal
    leverage: int
    update_ms: int
    liquidation_price: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class AccountEvent:
    reason: str  # ORDER | FUNDING_FEE | MARGIN_TYPE_CHANGE …
    time_ms: int
    wallet: Decimal
    cross_wallet: Decimal
    balance_change: Decimal
    positions: tuple[PositionState, ...]
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class ConfigEvent:
    """ACCOUNT_CONFIG_UPDATE (leverage change)."""

    symbol: str
    leverage: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class MarginCallEvent:
    """MARGIN_CALL: cross maintenance margin is close to the margin balance."""

    time_ms: int
    cross_wallet: Decimal
    positions: tuple[PositionState, ...]
    maint_margins: tuple[Decimal, ...]


SimEvent = OrderEvent | AlgoEvent | AccountEvent | ConfigEvent | MarginCallEvent


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Money parameters of the simulated account."""

    balance: Decimal = Decimal(10_000)
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal(1)
    default_leverage: int = 20
    pessimistic: bool = True


@dataclass(slots=True)
class PriceState:
    last: Decimal
    mark: Decimal
    time_ms: int
