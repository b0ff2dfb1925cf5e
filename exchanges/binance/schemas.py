"""Wire ⇄ kernel records for Binance USD-M.

Numbers arrive as JSON strings and become ``Decimal`` here, once. Unknown fields are ignored
and missing optional ones tolerated (2021 and 2026 payloads both parse; ``null`` counts as
missing). Wire enums map to kernel enums through explicit tables; an unknown wire value raises
``WireError`` naming the field and the value, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

from core.events import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    FillUpdate,
    MarginCall,
    MarkPriceUpdate,
    OrderUpdate,
)
from core.types import (
    ZERO,
    AlgoOrder,
    AlgoOrderRequest,
    AlgoStatus,
    Balance,
    Candle,
    CommissionRate,
    ExecutionType,
    Fill,
    FundingRate,
    Income,
    MarginType,
    MarkPrice,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    RateLimitRule,
    Rounding,
    Side,
    SymbolRules,
    TimeInForce,
    Timeframe,
    WorkingType,
)
from exchanges.binance.limits import rule_from_wire


class WireError(ValueError):
    """A payload Casino cannot map: missing required field, bad number, unknown enum value."""


Wire = Mapping[str, Any]
E = TypeVar("E", bound=Enum)

# ------------------------------------------------------------------ enum tables

SIDES: dict[str, Side] = {"BUY": Side.BUY, "SELL": Side.SELL}
POSITION_SIDES: dict[str, PositionSide] = {
    "BOTH": PositionSide.BOTH, "LONG": PositionSide.LONG, "SHORT": PositionSide.SHORT,
}
ORDER_TYPES: dict[str, OrderType] = {t.value: t for t in OrderType}
ORDER_STATUSES: dict[str, OrderStatus] = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED_IN_MATCH,
    "REJECTED": OrderStatus.REJECTED,
    # Older USD-M docs list these for liquidation orders (insurance fund / ADL counterparty);
    # they are live, unfilled orders, i.e. NEW.
    "NEW_INSURANCE": OrderStatus.NEW,
    "NEW_ADL": OrderStatus.NEW,
}
TIME_IN_FORCE: dict[str, TimeInForce] = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.GTX,
    "GTD": TimeInForce.GTD,
    # closePosition stops report GTE_GTC: good till cancelled *or* the position is gone.
    "GTE_GTC": TimeInForce.GTC,
}
ALGO_STATUSES: dict[str, AlgoStatus] = {s.value: s for s in AlgoStatus}
EXECUTION_TYPES: dict[str, ExecutionType] = {x.value: x for x in ExecutionType}
WORKING_TYPES: dict[str, WorkingType] = {
    "MARK_PRICE": WorkingType.MARK_PRICE, "CONTRACT_PRICE": WorkingType.CONTRACT_PRICE,
}
MARGIN_TYPES: dict[str, MarginType] = {
    "isolated": MarginType.ISOLATED, "cross": MarginType.CROSSED, "crossed": MarginType.CROSSED,
}
TIMEFRAMES: dict[str, Timeframe] = {t.value: t for t in Timeframe}


def enum(table: Mapping[str, E], value: Any, field: str) -> E:
    """Look ``value`` up in ``table``; unknown values fail loudly."""
    try:
        return table[value]
    except (KeyError, TypeError):
        raise WireError(f"unknown {field} value {value!r}; known: {sorted(table)}") from None


# ------------------------------------------------------------------ scalars


def req(data: Wire, key: str) -> Any:
    value = data.get(key)
    if value is None:
        raise WireError(f"missing required field {key!r}")
    return value


def dec(value: Any, field: str = "number") -> Decimal:
    """A Binance number (string, or int for counts) → Decimal; floats are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise WireError(f"{field}: {value!r} is not an exact number")
    try:
        return Decimal(value) if isinstance(value, str) else Decimal(int(value))
    except (InvalidOperation, TypeError, ValueError):
        raise WireError(f"{field}: {value!r} is not a number") from None


def dec_req(data: Wire, key: str) -> Decimal:
    return dec(req(data, key), key)


def dec_opt(data: Wire, key: str, default: Decimal | None = ZERO) -> Decimal | None:
    """Optional number: missing, null and "" give ``default``."""
    value = data.get(key)
    if value is None or value == "":
        return default
    return dec(value, key)


def int_opt(data: Wire, key: str, default: int = 0) -> int:
    value = data.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WireError(f"{key}: {value!r} is not an integer") from None


def bool_opt(data: Wire, key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise WireError(f"{key}: {value!r} is not a boolean")


def fmt(value: Decimal) -> str:
    """Decimal → plain string (never exponent notation)."""
    return format(value, "f")


# ------------------------------------------------------------------ reference data


def symbol_rules(sym: Wire) -> SymbolRules:
    """exchangeInfo ``symbols[i]`` → SymbolRules (tickSize/stepSize, not *Precision)."""
    filters = {f["filterType"]: f for f in sym.get("filters", ()) if "filterType" in f}
    price = filters.get("PRICE_FILTER")
    lot = filters.get("LOT_SIZE")
    if price is None or lot is None:
        raise WireError(f"{sym.get('symbol')}: PRICE_FILTER and LOT_SIZE are required")
    market = filters.get("MARKET_LOT_SIZE", {})
    notional = filters.get("MIN_NOTIONAL", {})
    percent = filters.get("PERCENT_PRICE", {})
    max_orders = filters.get("MAX_NUM_ORDERS", {})
    return SymbolRules(
        symbol=str(req(sym, "symbol")),
        tick_size=dec_req(price, "tickSize"),
        step_size=dec_req(lot, "stepSize"),
        min_qty=dec_req(lot, "minQty"),
        max_qty=dec_req(lot, "maxQty"),
        min_price=dec_opt(price, "minPrice") or ZERO,
        max_price=dec_opt(price, "maxPrice") or ZERO,
        market_step_size=dec_opt(market, "stepSize", None),
        market_min_qty=dec_opt(market, "minQty", None),
        market_max_qty=dec_opt(market, "maxQty", None),
        # The key is ``notional`` on USD-M (``minNotional`` is spot's); accept both.
        min_notional=dec_opt(notional, "notional", None) or dec_opt(notional, "minNotional") or ZERO,
        multiplier_up=dec_opt(percent, "multiplierUp", None),
        multiplier_down=dec_opt(percent, "multiplierDown", None),
        status=str(sym.get("status", "TRADING")),
        base_asset=str(sym.get("baseAsset", "")),
        quote_asset=str(sym.get("quoteAsset", "USDT")),
        margin_asset=str(sym.get("marginAsset", sym.get("quoteAsset", "USDT"))),
        price_precision=int_opt(sym, "pricePrecision", 8),
        quantity_precision=int_opt(sym, "quantityPrecision", 8),
        trigger_protect=dec_opt(sym, "triggerProtect") or ZERO,
        max_num_orders=int_opt(max_orders, "limit", 200),
        contract_type=str(sym.get("contractType", "PERPETUAL")),
    )


def exchange_info(data: Wire) -> tuple[dict[str, SymbolRules], list[RateLimitRule]]:
    """exchangeInfo → (rules by symbol, rate-limit rules)."""
    rules = {r.symbol: r for r in (symbol_rules(s) for s in req(data, "symbols"))}
    limits = [rule_from_wire(item) for item in data.get("rateLimits", ())]
    return rules, limits


def candle_from_rest(row: Sequence[Any], symbol: str, timeframe: Timeframe) -> Candle:
    """A klines row ``[openTime, o, h, l, c, v, closeTime, quoteVol, trades, takerBase, …]``."""
    if len(row) < 6:
        raise WireError(f"kline row too short: {row!r}")
    return Candle(
        symbol=symbol, timeframe=timeframe, open_time_ms=int(row[0]),
        open=dec(row[1], "open"), high=dec(row[2], "high"), low=dec(row[3], "low"),
        close=dec(row[4], "close"), volume=dec(row[5], "volume"), closed=True,
        quote_volume=dec(row[7], "quoteVolume") if len(row) > 7 else ZERO,
        trades=int(row[8]) if len(row) > 8 else 0,
        taker_buy_volume=dec(row[9], "takerBuyBase") if len(row) > 9 else ZERO,
    )


def candle_from_ws(k: Wire) -> Candle:
    """The ``k`` object of a kline event; ``closed`` is ``k.x``."""
    return Candle(
        symbol=str(req(k, "s")), timeframe=enum(TIMEFRAMES, req(k, "i"), "kline interval"),
        open_time_ms=int(req(k, "t")), open=dec_req(k, "o"), high=dec_req(k, "h"),
        low=dec_req(k, "l"), close=dec_req(k, "c"), volume=dec_req(k, "v"),
        closed=bool_opt(k, "x"), quote_volume=dec_opt(k, "q") or ZERO, trades=int_opt(k, "n"),
        taker_buy_volume=dec_opt(k, "V") or ZERO,
    )


def mark_price(data: Wire) -> MarkPrice:
    """premiumIndex (one symbol)."""
    return MarkPrice(
        symbol=str(req(data, "symbol")), mark_price=dec_req(data, "markPrice"),
        index_price=dec_opt(data, "indexPrice") or ZERO,
        funding_rate=dec_opt(data, "lastFundingRate") or ZERO,
        next_funding_time_ms=int_opt(data, "nextFundingTime"), time_ms=int_opt(data, "time"),
    )


def funding_rate(item: Wire) -> FundingRate:
    return FundingRate(
        symbol=str(req(item, "symbol")), funding_rate=dec_req(item, "fundingRate"),
        funding_time_ms=int(req(item, "fundingTime")), mark_price=dec_opt(item, "markPrice", None),
    )


def commission_rate(data: Wire) -> CommissionRate:
    return CommissionRate(
        symbol=str(req(data, "symbol")), maker=dec_req(data, "makerCommissionRate"),
        taker=dec_req(data, "takerCommissionRate"),
    )


# ------------------------------------------------------------------ orders


def order(data: Wire) -> Order:
    """A REST order (new/query/cancel/openOrders). ``avgPrice`` is optional (dropped from docs 2026)."""
    orig_type = data.get("origType")
    return Order(
        symbol=str(req(data, "symbol")), order_id=int(req(data, "orderId")),
        client_order_id=str(data.get("clientOrderId", "")),
        side=enum(SIDES, req(data, "side"), "side"),
        type=enum(ORDER_TYPES, req(data, "type"), "order type"),
        status=enum(ORDER_STATUSES, req(data, "status"), "order status"),
        quantity=dec_req(data, "origQty"), price=dec_opt(data, "price") or ZERO,
        executed_qty=dec_opt(data, "executedQty") or ZERO, avg_price=dec_opt(data, "avgPrice") or ZERO,
        time_in_force=enum(TIME_IN_FORCE, data["timeInForce"], "timeInForce") if data.get("timeInForce") else None,
        reduce_only=bool_opt(data, "reduceOnly"), close_position=bool_opt(data, "closePosition"),
        position_side=enum(POSITION_SIDES, data.get("positionSide", "BOTH"), "positionSide"),
        orig_type=enum(ORDER_TYPES, orig_type, "origType") if orig_type else None,
        update_time_ms=int_opt(data, "updateTime") or int_opt(data, "time"),
    )


def algo_order(data: Wire) -> AlgoOrder:
    """A REST algo order (new/query/openAlgoOrders). The order type key is ``orderType``."""
    actual = data.get("actualOrderId")
    triggered = actual not in (None, "")
    return AlgoOrder(
        symbol=str(req(data, "symbol")), algo_id=int(req(data, "algoId")),
        client_algo_id=str(data.get("clientAlgoId", "")),
        side=enum(SIDES, req(data, "side"), "side"),
        type=enum(ORDER_TYPES, req(data, "orderType"), "orderType"),
        status=enum(ALGO_STATUSES, req(data, "algoStatus"), "algoStatus"),
        quantity=dec_opt(data, "quantity") or ZERO, trigger_price=dec_opt(data, "triggerPrice") or ZERO,
        price=dec_opt(data, "price") or ZERO,
        working_type=enum(WORKING_TYPES, data.get("workingType", "CONTRACT_PRICE"), "workingType"),
        close_position=bool_opt(data, "closePosition"), reduce_only=bool_opt(data, "reduceOnly"),
        time_in_force=enum(TIME_IN_FORCE, data.get("timeInForce") or "GTC", "timeInForce"),
        position_side=enum(POSITION_SIDES, data.get("positionSide", "BOTH"), "positionSide"),
        activate_price=dec_opt(data, "activatePrice", None), callback_rate=dec_opt(data, "callbackRate", None),
        actual_order_id=int(actual) if triggered else None,
        # actualQty is only meaningful once a child order exists in the matching engine.
        executed_qty=(dec_opt(data, "actualQty") or ZERO) if triggered else ZERO,
        avg_price=dec_opt(data, "actualPrice") or ZERO,
        create_time_ms=int_opt(data, "createTime"), update_time_ms=int_opt(data, "updateTime"),
    )


def _rounded_qty(value: Decimal, rules: SymbolRules, *, market: bool) -> str:
    rounded = rules.round_qty(value, market=market)
    if rounded <= 0:
        raise WireError(f"{rules.symbol}: quantity {value} rounds to 0 at step {rules.step_size}")
    return fmt(rounded)


def order_params(request: OrderRequest, rules: SymbolRules) -> list[tuple[str, str]]:
    """OrderRequest → POST /fapi/v1/order parameters, numbers rounded by SymbolRules."""
    market = request.type is OrderType.MARKET
    params: list[tuple[str, str]] = [
        ("symbol", request.symbol), ("side", request.side.value), ("type", request.type.value),
        ("quantity", _rounded_qty(request.quantity, rules, market=market)),
        ("newClientOrderId", request.client_order_id),
        ("newOrderRespType", request.response_type.value),
    ]
    if request.position_side is not PositionSide.BOTH:
        params.append(("positionSide", request.position_side.value))
    if request.price is not None:
        params.append(("price", fmt(rules.round_price(request.price, Rounding.passive(request.side)))))
    if request.time_in_force is not None:
        params.append(("timeInForce", request.time_in_force.value))
    if request.reduce_only:
        params.append(("reduceOnly", "true"))
    if request.good_till_ms is not None:
        params.append(("goodTillDate", str(request.good_till_ms)))
    return params


def algo_params(request: AlgoOrderRequest, rules: SymbolRules) -> list[tuple[str, str]]:
    """AlgoOrderRequest → POST /fapi/v1/algoOrder parameters (algoType=CONDITIONAL)."""
    params: list[tuple[str, str]] = [
        ("algoType", "CONDITIONAL"), ("symbol", request.symbol), ("side", request.side.value),
        ("type", request.type.value), ("clientAlgoId", request.client_algo_id),
        ("workingType", request.working_type.value),
    ]
    if request.position_side is not PositionSide.BOTH:
        params.append(("positionSide", request.position_side.value))
    if request.trigger_price is not None:
        trigger = rules.round_price(request.trigger_price, Rounding.away_from_market(request.side))
        params.append(("triggerPrice", fmt(trigger)))
    if request.close_position:
        params.append(("closePosition", "true"))
    else:
        assert request.quantity is not None  # guaranteed by AlgoOrderRequest
        params.append(("quantity", _rounded_qty(request.quantity, rules, market=request.price is None)))
    if request.reduce_only:
        params.append(("reduceOnly", "true"))
    if request.price is not None:
        params.append(("price", fmt(rules.round_price(request.price, Rounding.passive(request.side)))))
        params.append(("timeInForce", request.time_in_force.value))
    if request.price_protect:
        params.append(("priceProtect", "true"))
    if request.activate_price is not None:
        params.append(("activatePrice", fmt(rules.round_price(request.activate_price, Rounding.NEAREST))))
    if request.callback_rate is not None:
        params.append(("callbackRate", fmt(request.callback_rate)))
    return params


# ------------------------------------------------------------------ account


def position(data: Wire) -> Position:
    """positionRisk v3 (or v2: it adds leverage/marginType, which v3 lacks)."""
    margin = data.get("marginType")
    leverage = data.get("leverage")
    return Position(
        symbol=str(req(data, "symbol")), quantity=dec_req(data, "positionAmt"),
        entry_price=dec_opt(data, "entryPrice") or ZERO, mark_price=dec_opt(data, "markPrice") or ZERO,
        unrealized_pnl=dec_opt(data, "unRealizedProfit", None) or dec_opt(data, "unrealizedProfit") or ZERO,
        leverage=int(leverage) if leverage not in (None, "") else None,
        margin_type=enum(MARGIN_TYPES, str(margin).lower(), "marginType") if margin else None,
        liquidation_price=dec_opt(data, "liquidationPrice") or ZERO,
        break_even_price=dec_opt(data, "breakEvenPrice") or ZERO,
        isolated_wallet=dec_opt(data, "isolatedWallet") or ZERO,
        position_side=enum(POSITION_SIDES, data.get("positionSide", "BOTH"), "positionSide"),
        update_time_ms=int_opt(data, "updateTime"),
    )


def balance(data: Wire) -> Balance:
    """balance v2/v3 item, or an ``assets[]`` item of account v2/v3."""
    wallet = dec_opt(data, "balance", None)
    if wallet is None:
        wallet = dec_req(data, "walletBalance")
    return Balance(
        asset=str(req(data, "asset")), wallet_balance=wallet,
        available_balance=dec_opt(data, "availableBalance") or ZERO,
        cross_wallet_balance=dec_opt(data, "crossWalletBalance") or ZERO,
        cross_unrealized_pnl=dec_opt(data, "crossUnPnl", None) or dec_opt(data, "unrealizedProfit") or ZERO,
        update_time_ms=int_opt(data, "updateTime"),
    )


def user_trade(item: Wire) -> Fill:
    """GET /fapi/v1/userTrades item → Fill (client id is not part of this payload)."""
    return Fill(
        symbol=str(req(item, "symbol")), order_id=int(req(item, "orderId")), trade_id=int(req(item, "id")),
        client_order_id="", side=enum(SIDES, req(item, "side"), "side"), price=dec_req(item, "price"),
        quantity=dec_req(item, "qty"), commission=dec_opt(item, "commission") or ZERO,
        commission_asset=str(item.get("commissionAsset") or ""),
        realized_pnl=dec_opt(item, "realizedPnl") or ZERO, is_maker=bool_opt(item, "maker"),
        time_ms=int(req(item, "time")),
    )


def income(item: Wire) -> Income:
    return Income(
        symbol=str(item.get("symbol") or ""), income_type=str(req(item, "incomeType")),
        income=dec_req(item, "income"), asset=str(req(item, "asset")), time_ms=int(req(item, "time")),
        tran_id=int(req(item, "tranId")), trade_id=str(item.get("tradeId") or ""),
        info=str(item.get("info") or ""),
    )


# ------------------------------------------------------------------ user-data events


def order_trade_update(event: Wire) -> OrderUpdate:
    """ORDER_TRADE_UPDATE → OrderUpdate; a fill is attached when ``l`` > 0 and ``t`` ≠ 0."""
    o = req(event, "o")
    event_ms = int(req(event, "E"))
    status = enum(ORDER_STATUSES, req(o, "X"), "order status X")
    execution = enum(EXECUTION_TYPES, req(o, "x"), "execution type x")
    orig_type = o.get("ot")
    current = Order(
        symbol=str(req(o, "s")), order_id=int(req(o, "i")), client_order_id=str(o.get("c") or ""),
        side=enum(SIDES, req(o, "S"), "side"), type=enum(ORDER_TYPES, req(o, "o"), "order type"),
        status=status, quantity=dec_req(o, "q"), price=dec_opt(o, "p") or ZERO,
        executed_qty=dec_opt(o, "z") or ZERO, avg_price=dec_opt(o, "ap") or ZERO,
        time_in_force=enum(TIME_IN_FORCE, o["f"], "timeInForce f") if o.get("f") else None,
        reduce_only=bool_opt(o, "R"), close_position=bool_opt(o, "cp"),
        position_side=enum(POSITION_SIDES, o.get("ps") or "BOTH", "positionSide"),
        orig_type=enum(ORDER_TYPES, orig_type, "origType ot") if orig_type else None,
        update_time_ms=int_opt(o, "T") or event_ms,
    )
    last_qty = dec_opt(o, "l") or ZERO
    trade_id = int_opt(o, "t")
    fill = None
    if last_qty > 0 and trade_id:
        fill = Fill(
            symbol=current.symbol, order_id=current.order_id, trade_id=trade_id,
            client_order_id=current.client_order_id, side=current.side, price=dec_req(o, "L"),
            quantity=last_qty, commission=dec_opt(o, "n") or ZERO,  # "n" is absent when zero
            commission_asset=str(o.get("N") or ""), realized_pnl=dec_opt(o, "rp") or ZERO,
            is_maker=bool_opt(o, "m"), time_ms=int_opt(o, "T") or event_ms,
        )
    return OrderUpdate(order=current, execution_type=execution, event_time_ms=event_ms, fill=fill,
                       expiry_reason=str(o.get("er") or ""))


def trade_lite(event: Wire) -> FillUpdate:
    """TRADE_LITE (no commission, no realised PnL: those come with ORDER_TRADE_UPDATE)."""
    event_ms = int(req(event, "E"))
    return FillUpdate(
        fill=Fill(
            symbol=str(req(event, "s")), order_id=int(req(event, "i")), trade_id=int(req(event, "t")),
            client_order_id=str(event.get("c") or ""), side=enum(SIDES, req(event, "S"), "side"),
            price=dec_req(event, "L"), quantity=dec_req(event, "l"), commission=ZERO,
            commission_asset="", realized_pnl=ZERO, is_maker=bool_opt(event, "m"),
            time_ms=int_opt(event, "T") or event_ms,
        ),
        event_time_ms=event_ms,
    )


def algo_update(event: Wire) -> AlgoUpdate:
    """ALGO_UPDATE → AlgoUpdate. ``ai`` is a string, empty until TRIGGERED; ``rm`` is the reason."""
    o = req(event, "o")
    actual = o.get("ai")
    return AlgoUpdate(
        algo=AlgoOrder(
            symbol=str(req(o, "s")), algo_id=int(req(o, "aid")), client_algo_id=str(o.get("caid") or ""),
            side=enum(SIDES, req(o, "S"), "side"), type=enum(ORDER_TYPES, req(o, "o"), "order type"),
            status=enum(ALGO_STATUSES, req(o, "X"), "algo status X"), quantity=dec_opt(o, "q") or ZERO,
            trigger_price=dec_opt(o, "tp") or ZERO, price=dec_opt(o, "p") or ZERO,
            working_type=enum(WORKING_TYPES, o.get("wt") or "CONTRACT_PRICE", "workingType"),
            close_position=bool_opt(o, "cp"), reduce_only=bool_opt(o, "R"),
            time_in_force=enum(TIME_IN_FORCE, o.get("f") or "GTC", "timeInForce"),
            position_side=enum(POSITION_SIDES, o.get("ps") or "BOTH", "positionSide"),
            actual_order_id=int(actual) if actual not in (None, "") else None,
            executed_qty=dec_opt(o, "aq") or ZERO, avg_price=dec_opt(o, "ap") or ZERO,
            reason=str(o.get("rm") or ""),
            # when the algo order changed (a FINISHED one: when its child filled); T and E are
            # both given and documented inconsistently (BINANCE.md), either is the venue's time
            update_time_ms=int_opt(event, "T") or int(req(event, "E")),
        ),
        event_time_ms=int(req(event, "E")),
    )


def account_update(event: Wire) -> AccountUpdate:
    """ACCOUNT_UPDATE: balances (``B``) and changed positions (``P``); FUNDING_FEE may omit ``P``."""
    a = req(event, "a")
    event_ms = int(req(event, "E"))
    balances = tuple(
        Balance(asset=str(req(b, "a")), wallet_balance=dec_req(b, "wb"),
                available_balance=ZERO, cross_wallet_balance=dec_opt(b, "cw") or ZERO,
                update_time_ms=event_ms)
        for b in a.get("B") or ()
    )
    positions = tuple(
        Position(
            symbol=str(req(p, "s")), quantity=dec_req(p, "pa"), entry_price=dec_opt(p, "ep") or ZERO,
            unrealized_pnl=dec_opt(p, "up") or ZERO,
            margin_type=enum(MARGIN_TYPES, str(p["mt"]).lower(), "margin type mt") if p.get("mt") else None,
            break_even_price=dec_opt(p, "bep") or ZERO, isolated_wallet=dec_opt(p, "iw") or ZERO,
            position_side=enum(POSITION_SIDES, p.get("ps") or "BOTH", "positionSide"),
            update_time_ms=event_ms,
        )
        for p in a.get("P") or ()
    )
    changes = tuple((str(b["a"]), dec(b["bc"], "bc")) for b in a.get("B") or () if b.get("bc") is not None)
    return AccountUpdate(
        reason=str(req(a, "m")), balances=balances, positions=positions, event_time_ms=event_ms,
        transaction_time_ms=int_opt(event, "T"), symbol=str(a.get("S") or event.get("S") or ""),
        balance_changes=changes,
    )


def account_config_update(event: Wire) -> AccountConfigUpdate:
    ac = event.get("ac") or {}
    ai = event.get("ai") or {}
    leverage = ac.get("l")
    return AccountConfigUpdate(
        symbol=str(ac.get("s") or ""), leverage=int(leverage) if leverage is not None else None,
        multi_assets=bool(ai["j"]) if "j" in ai else None, event_time_ms=int(req(event, "E")),
    )


def margin_call(event: Wire) -> MarginCall:
    return MarginCall(
        symbols=tuple(str(req(p, "s")) for p in event.get("p") or ()), event_time_ms=int(req(event, "E")),
    )


def mark_price_update(event: Wire) -> MarkPriceUpdate:
    """markPriceUpdate stream event."""
    return MarkPriceUpdate(
        symbol=str(req(event, "s")), mark_price=dec_req(event, "p"),
        index_price=dec_opt(event, "i") or ZERO, funding_rate=dec_opt(event, "r") or ZERO,
        next_funding_time_ms=int_opt(event, "T"), event_time_ms=int(req(event, "E")),
    )
