"""Simulator state → Binance's JSON shapes (REST responses and websocket payloads).

Shapes follow ``../shared/BINANCE.md`` and the fixtures in ``../shared/fixtures/binance``
(checked field by field in ``tests/test_sim_fidelity.py``): numbers that Binance sends as
strings are strings here (formatted from Decimal, never in exponent notation), ids and
times are ints, except where Binance itself is irregular (``ai`` in ALGO_UPDATE and
``actualOrderId`` are strings, ``code`` in the cancel-algo answer is the string "200").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.types import ZERO, Candle, MarginType, OrderType
from exchanges.sim.account import LedgerEntry
from exchanges.sim.records import (
    AccountEvent,
    AlgoEvent,
    MarginCallEvent,
    OrderEvent,
    PositionState,
    SimAlgo,
    SimOrder,
    TradeRecord,
)
from exchanges.sim.rules import SymbolSpec

Json = dict[str, Any]


def num(value: Decimal | None) -> str:
    """A Decimal as Binance writes it: plain digits, no exponent."""
    if value is None:
        return ""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def money(value: Decimal) -> str:
    """Wallet-like amounts: 8 decimals, as Binance's account endpoints write them."""
    return num(value.quantize(Decimal("0.00000001")))


def px(spec: SymbolSpec, value: Decimal) -> str:
    return num(value.quantize(spec.rules.tick_size)) if value else "0"


def qty(spec: SymbolSpec, value: Decimal) -> str:
    return num(value.quantize(spec.rules.step_size)) if value else "0"


# ----------------------------------------------------------------------------- orders


def order(spec: SymbolSpec, o: SimOrder, *, query: bool = False) -> Json:
    """POST/GET/DELETE /fapi/v1/order answer (GET adds ``time``)."""
    out: Json = {
        "orderId": o.order_id, "symbol": o.symbol, "status": o.status.value, "clientOrderId": o.client_order_id,
        "price": px(spec, o.price), "avgPrice": money(o.avg_price) if o.executed_qty else "0.00",
        "origQty": qty(spec, o.orig_qty), "executedQty": qty(spec, o.executed_qty),
        "cumQty": qty(spec, o.executed_qty), "cumQuote": num(o.cum_quote.quantize(Decimal("0.00001"))),
        "timeInForce": o.time_in_force.value, "type": o.type.value, "reduceOnly": o.reduce_only,
        "closePosition": o.close_position, "side": o.side.value, "positionSide": o.position_side.value,
        "stopPrice": px(spec, o.stop_price), "workingType": o.working_type.value, "priceProtect": o.price_protect,
        "origType": (o.orig_type or o.type).value, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": o.good_till_ms, "updateTime": o.update_ms,
    }
    if query:
        out["time"] = o.time_ms
    return out


def algo(spec: SymbolSpec, a: SimAlgo, *, query: bool = False) -> Json:
    """POST /fapi/v1/algoOrder answer; GET adds the actual* fields."""
    out: Json = {
        "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL",
        "orderType": a.type.value, "symbol": a.symbol, "side": a.side.value,
        "positionSide": a.position_side.value, "timeInForce": a.time_in_force.value,
        "quantity": qty(spec, a.quantity), "algoStatus": a.status.value,
        "triggerPrice": px(spec, a.trigger_price), "price": px(spec, a.price), "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": a.working_type.value, "priceMatch": "NONE",
        "closePosition": a.close_position, "priceProtect": a.price_protect, "reduceOnly": a.reduce_only,
        "activatePrice": px(spec, a.activate_price) if a.activate_price is not None else "",
        "callbackRate": num(a.callback_rate) if a.callback_rate is not None else "",
        "createTime": a.create_ms, "updateTime": a.update_ms, "triggerTime": a.trigger_ms, "goodTillDate": 0,
    }
    if query:
        out.update({
            "actualOrderId": str(a.actual_order_id) if a.actual_order_id else "",
            "actualPrice": money(a.avg_price) if a.executed_qty else "0",
            "actualType": (a.actual_type.value if a.actual_type else
                           ("LIMIT" if a.type in (OrderType.STOP, OrderType.TAKE_PROFIT) else "MARKET")),
            "actualQty": qty(spec, a.executed_qty), "tpOrderType": "",
        })
    return out


def trade(spec: SymbolSpec, t: TradeRecord) -> Json:
    """GET /fapi/v1/userTrades item."""
    tr = t.trade
    return {
        "symbol": t.symbol, "id": tr.trade_id, "orderId": t.order_id, "side": t.side.value,
        "price": px(spec, tr.price), "qty": qty(spec, tr.qty), "realizedPnl": money(tr.realized_pnl),
        "marginAsset": "USDT", "quoteQty": num(tr.price * tr.qty), "commission": money(tr.commission),
        "commissionAsset": "USDT", "time": t.time_ms, "positionSide": t.position_side.value,
        "buyer": t.side.value == "BUY", "maker": tr.maker,
    }


def income(e: LedgerEntry) -> Json:
    return {
        "symbol": e.symbol, "incomeType": e.income_type, "income": money(e.amount), "asset": "USDT",
        "info": e.info or e.income_type, "time": e.time_ms, "tranId": str(e.tran_id),
        "tradeId": e.trade_id if e.trade_id else "",
    }


# ----------------------------------------------------------------------------- positions / account


def position_v3(p: PositionState, open_order_im: Decimal, maint_rate: Decimal) -> Json:
    notional = p.qty * p.mark_price
    im = abs(notional) / p.leverage
    iso = p.margin_type is MarginType.ISOLATED
    return {
        "symbol": p.symbol, "positionSide": "BOTH", "positionAmt": num(p.qty), "entryPrice": num(p.entry_price),
        "breakEvenPrice": num(p.break_even), "markPrice": money(p.mark_price), "unRealizedProfit": money(p.unrealized),
        "liquidationPrice": num(p.liquidation_price), "isolatedMargin": money(p.isolated_wallet + p.unrealized) if iso else "0",
        "notional": money(notional), "marginAsset": "USDT", "isolatedWallet": money(p.isolated_wallet) if iso else "0",
        "initialMargin": money(im + open_order_im), "maintMargin": money(abs(notional) * maint_rate),
        "positionInitialMargin": money(im), "openOrderInitialMargin": money(open_order_im), "adl": 0,
        "bidNotional": "0", "askNotional": "0", "updateTime": p.update_ms,
    }


def position_v2(p: PositionState, max_notional: Decimal) -> Json:
    iso = p.margin_type is MarginType.ISOLATED
    return {
        "symbol": p.symbol, "positionAmt": num(p.qty), "entryPrice": num(p.entry_price),
        "breakEvenPrice": num(p.break_even), "markPrice": money(p.mark_price), "unRealizedProfit": money(p.unrealized),
        "liquidationPrice": num(p.liquidation_price), "leverage": str(p.leverage), "maxNotionalValue": num(max_notional),
        "marginType": "isolated" if iso else "cross",
        "isolatedMargin": money(p.isolated_wallet + p.unrealized) if iso else "0.00000000",
        "isAutoAddMargin": "false", "positionSide": "BOTH", "notional": money(p.qty * p.mark_price),
        "isolatedWallet": money(p.isolated_wallet) if iso else "0", "updateTime": p.update_ms,
    }


def position_event(p: PositionState) -> Json:
    """One entry of ACCOUNT_UPDATE's ``P``."""
    return {
        "s": p.symbol, "pa": num(p.qty), "ep": num(p.entry_price), "bep": num(p.break_even),
        "cr": money(p.cum_realized), "up": money(p.unrealized),
        "mt": "isolated" if p.margin_type is MarginType.ISOLATED else "cross",
        "iw": money(p.isolated_wallet), "ps": "BOTH",
    }


# ----------------------------------------------------------------------------- user-data events


def order_trade_update(spec: SymbolSpec, ev: OrderEvent) -> Json:
    o = ev.order
    t = ev.trade
    body: Json = {
        "s": o.symbol, "c": o.client_order_id, "S": o.side.value, "o": o.type.value, "f": o.time_in_force.value,
        "q": qty(spec, o.orig_qty), "p": px(spec, o.price), "ap": money(o.avg_price) if o.executed_qty else "0",
        "sp": px(spec, o.stop_price), "x": ev.execution.value, "X": o.status.value, "i": o.order_id,
        "l": qty(spec, t.qty) if t else "0", "z": qty(spec, o.executed_qty), "L": px(spec, t.price) if t else "0",
        "N": "USDT", "n": money(t.commission) if t else "0", "T": ev.time_ms, "t": t.trade_id if t else 0,
        "b": "0", "a": "0", "m": t.maker if t else False, "R": o.reduce_only, "wt": o.working_type.value,
        "ot": (o.orig_type or o.type).value, "ps": o.position_side.value, "cp": o.close_position,
        "rp": money(t.realized_pnl) if t else "0", "pP": o.price_protect, "si": 0, "ss": 0,
        "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": o.good_till_ms, "er": o.expiry_reason,
    }
    return {"e": "ORDER_TRADE_UPDATE", "E": ev.time_ms, "T": ev.time_ms, "o": body}


def trade_lite(spec: SymbolSpec, ev: OrderEvent) -> Json:
    o, t = ev.order, ev.trade
    assert t is not None
    return {
        "e": "TRADE_LITE", "E": ev.time_ms, "T": ev.time_ms, "s": o.symbol, "q": qty(spec, o.orig_qty),
        "p": px(spec, o.price), "m": t.maker, "c": o.client_order_id, "S": o.side.value,
        "L": px(spec, t.price), "l": qty(spec, t.qty), "t": t.trade_id, "i": o.order_id,
    }


def algo_update(spec: SymbolSpec, ev: AlgoEvent) -> Json:
    a = ev.algo
    body: Json = {
        "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.type.value, "s": a.symbol,
        "S": a.side.value, "ps": a.position_side.value, "f": a.time_in_force.value, "q": qty(spec, a.quantity),
        "X": a.status.value, "ai": str(a.actual_order_id) if a.actual_order_id else "",
    }
    if a.status.value != "TRIGGERING":  # real TRIGGERING frames omit ap/aq/act
        body["ap"] = money(a.avg_price) if a.executed_qty else "0"
        body["aq"] = qty(spec, a.executed_qty)
        body["act"] = a.actual_type.value if a.actual_type else ""
    body.update({
        "tp": px(spec, a.trigger_price), "p": px(spec, a.price), "V": "EXPIRE_MAKER",
        "wt": a.working_type.value, "pm": "NONE", "cp": a.close_position, "pP": a.price_protect,
        "R": a.reduce_only, "tt": a.trigger_ms, "gtd": 0,
    })
    if a.reason:
        body["rm"] = a.reason
    if a.type is OrderType.TRAILING_STOP_MARKET:
        body["ia"] = a.activated  # activated flag, trailing orders only (CL 2026-08-07)
    return {"e": "ALGO_UPDATE", "T": ev.time_ms, "E": ev.time_ms, "o": body}


def account_update(ev: AccountEvent) -> Json:
    body: Json = {
        "m": ev.reason,
        "B": [{"a": "USDT", "wb": money(ev.wallet), "cw": money(ev.cross_wallet),
               "bc": money(ev.balance_change if ev.reason != "ORDER" else ZERO)}],
        "P": [position_event(p) for p in ev.positions],
    }
    out: Json = {"e": "ACCOUNT_UPDATE", "T": ev.time_ms, "E": ev.time_ms, "a": body}
    if ev.symbol:
        out["a"]["S"] = ev.symbol  # FUNDING_FEE carries the symbol (SDK 17.0.1)
    return out


def margin_call(ev: MarginCallEvent) -> Json:
    return {
        "e": "MARGIN_CALL", "E": ev.time_ms, "cw": money(ev.cross_wallet),
        "p": [{"s": p.symbol, "ps": "BOTH", "pa": num(p.qty), "mt": "CROSSED", "iw": "0",
               "mp": money(p.mark_price), "up": money(p.unrealized), "mm": money(mm)}
              for p, mm in zip(ev.positions, ev.maint_margins, strict=True)],
    }


# ----------------------------------------------------------------------------- market data


def kline_row(spec: SymbolSpec, c: Candle) -> list[Any]:
    """A REST klines row; prices on the symbol's tick grid, as Binance writes them."""
    return [c.open_time_ms, px(spec, c.open), px(spec, c.high), px(spec, c.low), px(spec, c.close), num(c.volume),
            c.close_time_ms, num(c.quote_volume), c.trades, "0", "0", "0"]


def kline_event(spec: SymbolSpec, c: Candle, event_ms: int, first_id: int, last_id: int) -> Json:
    """A ``<symbol>@kline_<interval>`` payload (``x`` true on the closed bar)."""
    return {
        "e": "kline", "E": event_ms, "s": c.symbol,
        "k": {"t": c.open_time_ms, "T": c.close_time_ms, "s": c.symbol, "i": c.timeframe.value, "f": first_id,
              "L": last_id, "o": px(spec, c.open), "c": px(spec, c.close), "h": px(spec, c.high),
              "l": px(spec, c.low), "v": num(c.volume), "n": c.trades, "x": c.closed, "q": num(c.quote_volume),
              "V": "0", "Q": "0", "B": "0"},
    }


def mark_price_event(symbol: str, mark: Decimal, rate: Decimal, next_ms: int, event_ms: int) -> Json:
    m = money(mark)  # Binance writes mark/index prices with 8 decimals
    return {"e": "markPriceUpdate", "E": event_ms, "s": symbol, "p": m, "ap": m, "i": m, "P": m,
            "r": num(rate), "T": next_ms, "st": 1}


def agg_trade_event(symbol: str, agg_id: int, price: Decimal, quantity: Decimal, buyer_maker: bool,
                    time_ms: int) -> Json:
    q = num(quantity)
    return {"e": "aggTrade", "E": time_ms, "a": agg_id, "s": symbol, "p": num(price), "q": q, "nq": q,
            "f": agg_id, "l": agg_id, "T": time_ms, "m": buyer_maker, "st": 1}


def book_ticker_event(symbol: str, price: Decimal, update_id: int, time_ms: int) -> Json:
    # No order book is simulated: best bid = best ask = last price (see matching.py).
    p = num(price)
    return {"e": "bookTicker", "u": update_id, "s": symbol, "b": p, "B": "1", "a": p, "A": "1",
            "T": time_ms, "E": time_ms, "ps": symbol, "st": 1}
