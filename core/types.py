"""Domain vocabulary of Casino: enums and frozen records shared by every layer.

Money, prices and quantities are ``Decimal`` everywhere in this module; floats never
enter an exchange-facing path. Venue timestamps are ``int`` milliseconds since the
epoch (UTC). Wire formats (Binance's strings) are mapped to these types in
``exchanges/*/schemas.py``, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import Enum

ZERO = Decimal(0)


class Side(str, Enum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for BUY (adds to a long), -1 for SELL."""
        return 1 if self is Side.BUY else -1


class PositionSide(str, Enum):
    """Binance position side; Casino runs in one-way mode, i.e. always BOTH."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class OrderType(str, Enum):
    """Order types; the conditional ones live only on Binance's Algo Order API since 2025-12-09."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def is_conditional(self) -> bool:
        """True for types that must be sent to /fapi/v1/algoOrder (else -4120)."""
        return self not in (OrderType.LIMIT, OrderType.MARKET)

    @property
    def is_stop(self) -> bool:
        return self in (OrderType.STOP, OrderType.STOP_MARKET, OrderType.TRAILING_STOP_MARKET)

    @property
    def is_take_profit(self) -> bool:
        return self in (OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_MARKET)


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"  # post-only: rejected with -5022 if it would take
    GTD = "GTD"


class OrderStatus(str, Enum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)

    @property
    def is_final(self) -> bool:
        return not self.is_open


class AlgoStatus(str, Enum):
    """Lifecycle of a conditional order in Binance's Algo Service."""

    NEW = "NEW"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        """Still able to act on the position (not yet final)."""
        return self in (AlgoStatus.NEW, AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED)

    @property
    def is_final(self) -> bool:
        return not self.is_open


class ExecutionType(str, Enum):
    """Why an ORDER_TRADE_UPDATE was sent (field ``x``)."""

    NEW = "NEW"
    CANCELED = "CANCELED"
    CALCULATED = "CALCULATED"  # liquidation
    EXPIRED = "EXPIRED"
    TRADE = "TRADE"
    AMENDMENT = "AMENDMENT"


class WorkingType(str, Enum):
    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class MarginType(str, Enum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


class ResponseType(str, Enum):
    ACK = "ACK"
    RESULT = "RESULT"


class TradingState(str, Enum):
    """The risk gate's state: what kind of orders may leave."""

    ACTIVE = "ACTIVE"  # anything the other checks allow
    REDUCING = "REDUCING"  # only orders that reduce risk (exits, stops, cancels)
    HALTED = "HALTED"  # no entries at all; protection and exits still run


class Rounding(str, Enum):
    """Direction for rounding a price to the tick grid."""

    DOWN = "DOWN"
    UP = "UP"
    NEAREST = "NEAREST"

    @staticmethod
    def passive(side: Side) -> Rounding:
        """A resting limit never becomes more aggressive by rounding: buys down, sells up."""
        return Rounding.DOWN if side is Side.BUY else Rounding.UP

    @staticmethod
    def away_from_market(trigger_side: Side) -> Rounding:
        """A stop rounds away from the market so it never triggers earlier than asked.

        ``trigger_side`` is the side of the stop order: a SELL stop protects a long and sits
        below the market (round DOWN); a BUY stop protects a short and sits above (round UP).
        """
        return Rounding.DOWN if trigger_side is Side.SELL else Rounding.UP


class Timeframe(str, Enum):
    """Kline intervals Casino reads, with their length."""

    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"

    @property
    def ms(self) -> int:
        return _TIMEFRAME_MS[self]

    @property
    def seconds(self) -> int:
        return self.ms // 1000

    @property
    def minutes(self) -> int:
        return self.ms // 60_000

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Parse '5m', '1h' …; raises ValueError naming the allowed values."""
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown timeframe {text!r}; allowed: {allowed}") from None

    def bucket_start(self, open_time_ms: int) -> int:
        """Open time of the bar of this timeframe that contains ``open_time_ms`` (UTC-aligned)."""
        return open_time_ms - open_time_ms % self.ms


_TIMEFRAME_MS = {
    Timeframe.M1: 60_000,
    Timeframe.M3: 3 * 60_000,
    Timeframe.M5: 5 * 60_000,
    Timeframe.M15: 15 * 60_000,
    Timeframe.M30: 30 * 60_000,
    Timeframe.H1: 3_600_000,
    Timeframe.H2: 2 * 3_600_000,
    Timeframe.H4: 4 * 3_600_000,
    Timeframe.H6: 6 * 3_600_000,
    Timeframe.H8: 8 * 3_600_000,
    Timeframe.H12: 12 * 3_600_000,
    Timeframe.D1: 24 * 3_600_000,
}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline. ``closed`` is False for an in-progress bar (never fed to sensors)."""

    symbol: str
    timeframe: Timeframe
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool = True
    quote_volume: Decimal = ZERO
    trades: int = 0
    taker_buy_volume: Decimal = ZERO

    @property
    def close_time_ms(self) -> int:
        """Binance's close time: the last millisecond inside the bar."""
        return self.open_time_ms + self.timeframe.ms - 1


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A regular (LIMIT/MARKET) order as Casino wants it placed."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    position_side: PositionSide = PositionSide.BOTH
    response_type: ResponseType = ResponseType.RESULT
    good_till_ms: int | None = None

    def __post_init__(self) -> None:
        if self.type.is_conditional:
            raise ValueError(f"{self.type.value} is conditional: use AlgoOrderRequest")
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")
        if self.type is OrderType.LIMIT and (self.price is None or self.time_in_force is None):
            raise ValueError("LIMIT orders need price and time_in_force")
        if self.type is OrderType.MARKET and self.price is not None:
            raise ValueError("MARKET orders take no price")


@dataclass(frozen=True, slots=True)
class AlgoOrderRequest:
    """A conditional order for the Algo Order API (algoType=CONDITIONAL)."""

    symbol: str
    side: Side
    type: OrderType
    client_algo_id: str
    trigger_price: Decimal | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    working_type: WorkingType = WorkingType.MARK_PRICE
    close_position: bool = False
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    price_protect: bool = False
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None  # percent, as Binance takes it (0.1 .. 20)
    position_side: PositionSide = PositionSide.BOTH

    def __post_init__(self) -> None:
        if not self.type.is_conditional:
            raise ValueError(f"{self.type.value} is not conditional: use OrderRequest")
        if self.close_position:
            if self.type not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
                raise ValueError("closePosition only with STOP_MARKET/TAKE_PROFIT_MARKET")
            if self.quantity is not None or self.reduce_only:
                raise ValueError("closePosition cannot be combined with quantity or reduceOnly")
        elif self.quantity is None or self.quantity <= 0:
            raise ValueError("a conditional order needs a positive quantity or closePosition")
        if self.type is OrderType.TRAILING_STOP_MARKET:
            if self.callback_rate is None:
                raise ValueError("TRAILING_STOP_MARKET needs callback_rate")
        elif self.trigger_price is None or self.trigger_price <= 0:
            raise ValueError(f"{self.type.value} needs a positive trigger_price")
        if self.type in (OrderType.STOP, OrderType.TAKE_PROFIT) and self.price is None:
            raise ValueError(f"{self.type.value} needs a limit price")


@dataclass(frozen=True, slots=True)
class Order:
    """A regular order as the exchange reports it."""

    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    price: Decimal
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    position_side: PositionSide = PositionSide.BOTH
    orig_type: OrderType | None = None
    update_time_ms: int = 0

    @property
    def remaining_qty(self) -> Decimal:
        return self.quantity - self.executed_qty


@dataclass(frozen=True, slots=True)
class AlgoOrder:
    """A conditional order in the Algo Service; ``actual_order_id`` is set once TRIGGERED."""

    symbol: str
    algo_id: int
    client_algo_id: str
    side: Side
    type: OrderType
    status: AlgoStatus
    quantity: Decimal
    trigger_price: Decimal
    price: Decimal = ZERO
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    close_position: bool = False
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    position_side: PositionSide = PositionSide.BOTH
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    actual_order_id: int | None = None
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    reason: str = ""
    create_time_ms: int = 0
    update_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of one of our orders; unique by (order_id, trade_id)."""

    symbol: str
    order_id: int
    trade_id: int
    client_order_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    is_maker: bool
    time_ms: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.order_id, self.trade_id)

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class Position:
    """A one-way position: ``quantity`` is signed (+ long, - short, 0 flat)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    leverage: int | None = None
    margin_type: MarginType | None = None
    liquidation_price: Decimal = ZERO
    break_even_price: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    position_side: PositionSide = PositionSide.BOTH
    update_time_ms: int = 0

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0

    @property
    def side(self) -> Side | None:
        """BUY for a long, SELL for a short, None when flat."""
        if self.quantity > 0:
            return Side.BUY
        if self.quantity < 0:
            return Side.SELL
        return None

    @property
    def notional(self) -> Decimal:
        return abs(self.quantity) * (self.mark_price or self.entry_price)


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
    cross_wallet_balance: Decimal = ZERO
    cross_unrealized_pnl: Decimal = ZERO
    update_time_ms: int = 0

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet_balance + self.cross_unrealized_pnl


@dataclass(frozen=True, slots=True)
class MarkPrice:
    symbol: str
    mark_price: Decimal
    index_price: Decimal
    funding_rate: Decimal
    next_funding_time_ms: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class FundingRate:
    symbol: str
    funding_rate: Decimal
    funding_time_ms: int
    mark_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Income:
    """One line of the account's income history (REALIZED_PNL, COMMISSION, FUNDING_FEE …)."""

    symbol: str
    income_type: str
    income: Decimal
    asset: str
    time_ms: int
    tran_id: int
    trade_id: str = ""
    info: str = ""


@dataclass(frozen=True, slots=True)
class CommissionRate:
    symbol: str
    maker: Decimal
    taker: Decimal


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One entry of exchangeInfo.rateLimits."""

    kind: str  # REQUEST_WEIGHT | ORDERS | RAW_REQUESTS
    interval_ms: int
    limit: int


# ------------------------------------------------------------------- symbol filters


@dataclass(frozen=True, slots=True)
class FilterCheck:
    """A failed filter check: which filter, Binance's error code for it, and why."""

    filter: str
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """A symbol's trading filters, and rounding that satisfies them.

    Quantities always round DOWN to ``step_size`` (never more risk than asked); prices
    round to ``tick_size`` in the direction the caller chooses (see ``Rounding``).
    """

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO  # 0 = no upper bound (as Binance encodes it)
    market_step_size: Decimal | None = None
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    min_notional: Decimal = ZERO
    multiplier_up: Decimal | None = None
    multiplier_down: Decimal | None = None
    status: str = "TRADING"
    base_asset: str = ""
    quote_asset: str = "USDT"
    margin_asset: str = "USDT"
    price_precision: int = 8
    quantity_precision: int = 8
    trigger_protect: Decimal = ZERO
    max_num_orders: int = 200
    contract_type: str = "PERPETUAL"

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.step_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size and step_size must be positive")

    # -- rounding ---------------------------------------------------------------

    def round_price(self, price: Decimal, rounding: Rounding) -> Decimal:
        """Snap ``price`` to a multiple of tick_size in the given direction, within bounds."""
        _require_decimal(price, "price")
        mode = {
            Rounding.DOWN: ROUND_FLOOR,
            Rounding.UP: ROUND_CEILING,
            Rounding.NEAREST: ROUND_HALF_EVEN,
        }[rounding]
        ticks = (price / self.tick_size).to_integral_value(rounding=mode)
        rounded = (ticks * self.tick_size).quantize(self.tick_size)
        if self.min_price > 0 and rounded < self.min_price:
            rounded = self.min_price
        if self.max_price > 0 and rounded > self.max_price:
            rounded = self.max_price
        return rounded

    def round_qty(self, quantity: Decimal, *, market: bool = False) -> Decimal:
        """Round ``quantity`` DOWN to the (market) step; may return 0 — check before sending."""
        _require_decimal(quantity, "quantity")
        step = self.market_step_size if market and self.market_step_size else self.step_size
        if quantity <= 0:
            return ZERO.quantize(step)
        steps = (quantity / step).to_integral_value(rounding=ROUND_FLOOR)
        rounded = (steps * step).quantize(step)
        max_qty = self._max_qty(market)
        if max_qty > 0 and rounded > max_qty:
            rounded = (max_qty / step).to_integral_value(rounding=ROUND_FLOOR) * step
            rounded = rounded.quantize(step)
        return rounded

    def _max_qty(self, market: bool) -> Decimal:
        if market and self.market_max_qty:
            return self.market_max_qty
        return self.max_qty

    def _min_qty(self, market: bool) -> Decimal:
        if market and self.market_min_qty is not None:
            return self.market_min_qty
        return self.min_qty

    # -- validation ---------------------------------------------------------------

    def check(
        self,
        *,
        quantity: Decimal,
        price: Decimal | None,
        reference_price: Decimal | None = None,
        market: bool = False,
        reduce_only: bool = False,
        side: Side | None = None,
    ) -> list[FilterCheck]:
        """Return every filter the order would violate (empty = acceptable).

        ``price`` is the limit price (None for MARKET); ``reference_price`` is the price the
        notional and PERCENT_PRICE checks are made against (mark price for a MARKET order).
        Codes are the ones Binance answers with.
        """
        failures: list[FilterCheck] = []
        _require_decimal(quantity, "quantity")
        step = self.market_step_size if market and self.market_step_size else self.step_size
        if quantity <= 0:
            failures.append(FilterCheck("LOT_SIZE", -4003, "Quantity less than or equal to zero."))
            return failures
        if quantity % step != 0:
            failures.append(
                FilterCheck("LOT_SIZE", -4023, f"Quantity {quantity} not a multiple of step {step}")
            )
        lot = "MARKET_LOT_SIZE" if market else "LOT_SIZE"
        if quantity < self._min_qty(market):
            failures.append(
                FilterCheck(lot, -4004, f"Quantity {quantity} below minimum {self._min_qty(market)}")
            )
        if self._max_qty(market) > 0 and quantity > self._max_qty(market):
            failures.append(
                FilterCheck(lot, -4005, f"Quantity {quantity} above maximum {self._max_qty(market)}")
            )
        if price is not None:
            _require_decimal(price, "price")
            if price <= 0:
                failures.append(FilterCheck("PRICE_FILTER", -4013, "Price less than or equal to zero."))
                return failures
            if price % self.tick_size != 0:
                failures.append(
                    FilterCheck(
                        "PRICE_FILTER", -4014, f"Price {price} not a multiple of tick {self.tick_size}"
                    )
                )
            if self.min_price > 0 and price < self.min_price:
                failures.append(
                    FilterCheck("PRICE_FILTER", -4013, f"Price {price} below minimum {self.min_price}")
                )
            if self.max_price > 0 and price > self.max_price:
                failures.append(
                    FilterCheck("PRICE_FILTER", -4016, f"Price {price} above maximum {self.max_price}")
                )
        notional_price = price if price is not None else reference_price
        if notional_price is not None and not reduce_only and self.min_notional > 0:
            if quantity * notional_price < self.min_notional:
                failures.append(
                    FilterCheck(
                        "MIN_NOTIONAL",
                        -4164,
                        "Order's notional must be no smaller than "
                        f"{self.min_notional} (unless you choose reduce only)",
                    )
                )
        if (
            price is not None
            and reference_price is not None
            and reference_price > 0
            and self.multiplier_up is not None
            and self.multiplier_down is not None
        ):
            upper = reference_price * self.multiplier_up
            lower = reference_price * self.multiplier_down
            limit_up = side in (None, Side.BUY)
            limit_down = side in (None, Side.SELL)
            if (limit_up and price > upper) or (limit_down and price < lower):
                failures.append(
                    FilterCheck(
                        "PERCENT_PRICE",
                        -4131,
                        f"Price {price} outside [{lower}, {upper}] around {reference_price}",
                    )
                )
        return failures

    def min_qty_for_notional(self, price: Decimal) -> Decimal:
        """Smallest step-aligned quantity meeting both min_qty and min_notional at ``price``."""
        _require_decimal(price, "price")
        if price <= 0:
            raise ValueError("price must be positive")
        needed = max(self.min_qty, self.min_notional / price if self.min_notional else ZERO)
        steps = (needed / self.step_size).to_integral_value(rounding=ROUND_CEILING)
        return (steps * self.step_size).quantize(self.step_size)


def _require_decimal(value: object, name: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be Decimal, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What reconciliation reads from the exchange at once."""

    balances: tuple[Balance, ...] = ()
    positions: tuple[Position, ...] = ()
    open_orders: tuple[Order, ...] = ()
    open_algo_orders: tuple[AlgoOrder, ...] = ()
    time_ms: int = 0
