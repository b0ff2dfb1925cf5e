"""The REST endpoints of the simulated Binance: one function per endpoint, params in, JSON out.

Each handler takes the request's parameters (strings, as sent) and the ``SimContext`` and
returns what Binance would put in the body; refusals raise ``SimError``. Transport concerns
(limits, signing, faults, headers) live in ``server.py``; the table ``ROUTES`` at the end
lists every path with its method, security type, request weight and order count
(weights from BINANCE.md §2–§4).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from core.types import MarginType, OrderType, PositionSide, ResponseType, Side, Timeframe, TimeInForce, WorkingType
from exchanges.sim import render
from exchanges.sim.errors import SimError, err
from exchanges.sim.faults import Faults
from exchanges.sim.feed import kline_rows, next_funding_time
from exchanges.sim.limits import by_symbol, klines_weight
from exchanges.sim.records import OrderEvent
from exchanges.sim.rules import SymbolSpec
from exchanges.sim.venue import Venue

Params = dict[str, str]
LISTEN_KEY_TTL_MS = 3_600_000


class Security(Enum):
    NONE = "NONE"
    USER_STREAM = "USER_STREAM"  # API key only, no signature
    SIGNED = "SIGNED"


@dataclass
class SimContext:
    """What the handlers work on: the venue, faults and listen keys (simulated time)."""

    venue: Venue
    faults: Faults
    listen_key: str | None = None
    listen_key_expiry_ms: int = 0
    listen_key_ttl_ms: int = LISTEN_KEY_TTL_MS

    @property
    def now_ms(self) -> int:
        return self.venue.now_ms

    def spec(self, symbol: str) -> SymbolSpec:
        return self.venue.engine.spec(symbol)


# ----------------------------------------------------------------------------- parsing


def req(p: Params, name: str) -> str:
    v = p.get(name)
    if v is None or v == "":
        raise err(-1102, name)
    return v


def dec(p: Params, name: str, required: bool = False) -> Decimal | None:
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise err(-1102, name)
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise err(-1130, name) from None
    if not d.is_finite():
        raise err(-1130, name)
    return d


def integer(p: Params, name: str) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise err(-1130, name) from None


def flag(p: Params, name: str) -> bool:
    v = p.get(name, "false").lower()
    if v not in ("true", "false"):
        raise err(-1130, name)
    return v == "true"


def enum(kind: type[Enum], p: Params, name: str, default: Any = None, code: int = -1130) -> Any:
    v = p.get(name)
    if v is None or v == "":
        if default is None:
            raise err(-1102, name)
        return default
    try:
        return kind(v)
    except ValueError:
        if code == -1130:
            raise err(-1130, name) from None
        raise err(code) from None


# ----------------------------------------------------------------------------- market data


def ping(ctx: SimContext, p: Params) -> Any:
    return {}


def server_time(ctx: SimContext, p: Params) -> Any:
    return {"serverTime": ctx.now_ms + ctx.faults.clock_skew_ms}


def exchange_info(ctx: SimContext, p: Params) -> Any:
    symbols = []
    for spec in ctx.venue.specs.values():
        r = spec.rules
        symbols.append({
            "symbol": r.symbol, "pair": r.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": r.base_asset, "quoteAsset": "USDT", "marginAsset": "USDT",
            "pricePrecision": r.price_precision, "quantityPrecision": r.quantity_precision, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
            "triggerProtect": render.num(r.trigger_protect), "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": render.num(r.min_price), "maxPrice": render.num(r.max_price),
                 "tickSize": render.num(r.tick_size)},
                {"filterType": "LOT_SIZE", "stepSize": render.num(r.step_size), "maxQty": render.num(r.max_qty),
                 "minQty": render.num(r.min_qty)},
                {"filterType": "MARKET_LOT_SIZE", "stepSize": render.num(r.market_step_size or r.step_size),
                 "maxQty": render.num(r.market_max_qty or r.max_qty), "minQty": render.num(r.market_min_qty or r.min_qty)},
                {"filterType": "MAX_NUM_ORDERS", "limit": r.max_num_orders},
                {"filterType": "MIN_NOTIONAL", "notional": render.num(r.min_notional)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": render.num(r.multiplier_up),
                 "multiplierDown": render.num(r.multiplier_down), "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        })
    return {
        "timezone": "UTC", "serverTime": ctx.now_ms, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def _symbol(ctx: SimContext, p: Params) -> str:
    s = req(p, "symbol")
    ctx.spec(s)
    return s


def klines(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    try:
        tf = Timeframe(req(p, "interval"))
    except ValueError:
        raise SimError(-1120, "Invalid interval.") from None
    limit = integer(p, "limit") or 500
    if not 1 <= limit <= 1500:
        raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = integer(p, "startTime"), integer(p, "endTime")
    rows = kline_rows(ctx.venue.data[sym], tf, now_ms=ctx.now_ms + 1, start_ms=start, end_ms=end, limit=limit)
    out = [render.kline_row(c) for c in rows]
    live = ctx.venue.kline_in_progress(sym, tf)
    # Binance includes the bar still in progress when the range reaches it.
    if live is not None and (end is None or end >= live.open_time_ms) and (start is None or start <= live.open_time_ms):
        if not out or out[-1][0] < live.open_time_ms:
            out.append(render.kline_row(live))
            if len(out) > limit:
                out = out[-limit:] if start is None else out[:limit]
    return out


def _premium(ctx: SimContext, sym: str) -> dict[str, Any]:
    mark = ctx.venue.engine.mark_price(sym) or Decimal(0)
    rate = ctx.venue.current_funding_estimate(sym)
    m = render.num(mark)
    return {"symbol": sym, "markPrice": m, "indexPrice": m, "estimatedSettlePrice": m,
            "lastFundingRate": render.num(rate), "interestRate": "0.00010000",
            "nextFundingTime": next_funding_time(ctx.now_ms), "time": ctx.now_ms}


def premium_index(ctx: SimContext, p: Params) -> Any:
    if p.get("symbol"):
        return _premium(ctx, _symbol(ctx, p))
    return [_premium(ctx, s) for s in ctx.venue.specs]


def funding_rate(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    limit = min(integer(p, "limit") or 100, 1000)
    start, end = integer(p, "startTime"), integer(p, "endTime")
    d = ctx.venue.data[sym]
    rows = []
    if d.funding is not None:
        for i in range(len(d.funding)):
            t = int(d.funding.time_ms[i])
            if t > ctx.now_ms or (start is not None and t < start) or (end is not None and t > end):
                continue
            item = {"symbol": sym, "fundingRate": render.num(d.funding.rate_decimal(i)), "fundingTime": t,
                    "markPrice": ""}
            if d.mark_8h is not None:
                j = d.mark_8h.open_time.searchsorted(t)
                if j < len(d.mark_8h) and int(d.mark_8h.open_time[j]) == t:
                    item["markPrice"] = render.num(d.mark_8h.candle(j).open)
            rows.append(item)
    return rows[:limit] if start is not None else rows[-limit:]


# ----------------------------------------------------------------------------- orders


def _place(ctx: SimContext, p: Params) -> dict[str, Any]:
    sym = _symbol(ctx, p)
    spec = ctx.spec(sym)
    side = enum(Side, p, "side", code=-1117)
    order_type = enum(OrderType, p, "type", code=-1116)
    resp = enum(ResponseType, p, "newOrderRespType", ResponseType.ACK)
    eng = ctx.venue.engine
    o = eng.place_order(
        symbol=sym, side=side, order_type=order_type, quantity=dec(p, "quantity"), now_ms=ctx.now_ms,
        price=dec(p, "price"), time_in_force=enum(TimeInForce, p, "timeInForce", None)
        if p.get("timeInForce") else None, reduce_only=flag(p, "reduceOnly"),
        client_order_id=p.get("newClientOrderId") or None,
        position_side=enum(PositionSide, p, "positionSide", PositionSide.BOTH),
        good_till_ms=integer(p, "goodTillDate"),
    )
    if resp is ResponseType.ACK:
        # ACK answers with the order as accepted, before any fill.
        first = next(ev.order for ev in eng.events if isinstance(ev, OrderEvent) and ev.order.order_id == o.order_id)
        return render.order(spec, first)
    return render.order(spec, eng.orders[o.order_id])


def new_order(ctx: SimContext, p: Params) -> Any:
    if p.get("type") and p.get("type") in {t.value for t in OrderType if t.is_conditional}:
        raise err(-4120)
    return _place(ctx, p)


def _order_ref(p: Params) -> tuple[int | None, str | None]:
    oid = integer(p, "orderId")
    cid = p.get("origClientOrderId") or None
    if oid is None and cid is None:
        raise SimError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return oid, cid


def query_order(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    oid, cid = _order_ref(p)
    return render.order(ctx.spec(sym), ctx.venue.engine.get_order(sym, order_id=oid, client_order_id=cid), query=True)


def cancel_order(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    oid, cid = _order_ref(p)
    return render.order(ctx.spec(sym), ctx.venue.engine.cancel_order(sym, now_ms=ctx.now_ms, order_id=oid,
                                                                      client_order_id=cid))


def open_orders(ctx: SimContext, p: Params) -> Any:
    sym = p.get("symbol") or None
    if sym:
        ctx.spec(sym)
    return [render.order(ctx.spec(o.symbol), o, query=True) for o in ctx.venue.engine.open_orders(sym)]


def all_orders(ctx: SimContext, p: Params) -> Any:
    """GET /fapi/v1/allOrders: open and final orders still kept (see MatchingEngine.prune)."""
    sym = p.get("symbol") or None
    if sym:
        ctx.spec(sym)
    oid, start, end = integer(p, "orderId"), integer(p, "startTime"), integer(p, "endTime")
    limit = min(integer(p, "limit") or 500, 1000)
    rows = [o for o in ctx.venue.engine.orders.values() if (sym is None or o.symbol == sym)
            and (oid is None or o.order_id >= oid) and (start is None or o.time_ms >= start)
            and (end is None or o.time_ms <= end)]
    rows = rows[:limit] if (oid is not None or start is not None) else rows[-limit:]
    return [render.order(ctx.spec(o.symbol), o, query=True) for o in rows]


def ticker_price(ctx: SimContext, p: Params) -> Any:
    def one(sym: str) -> dict[str, Any]:
        last = ctx.venue.engine.last_price(sym) or Decimal(0)
        return {"symbol": sym, "price": render.num(last), "time": ctx.now_ms}
    return one(_symbol(ctx, p)) if p.get("symbol") else [one(s) for s in ctx.venue.specs]


def book_ticker(ctx: SimContext, p: Params) -> Any:
    # No order book is simulated: bid = ask = last price (see matching.py).
    def one(sym: str) -> dict[str, Any]:
        last = render.num(ctx.venue.engine.last_price(sym) or Decimal(0))
        return {"symbol": sym, "bidPrice": last, "bidQty": "1", "askPrice": last, "askQty": "1",
                "time": ctx.now_ms}
    return one(_symbol(ctx, p)) if p.get("symbol") else [one(s) for s in ctx.venue.specs]


def cancel_all_orders(ctx: SimContext, p: Params) -> Any:
    ctx.venue.engine.cancel_all(_symbol(ctx, p), ctx.now_ms)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def batch_orders(ctx: SimContext, p: Params) -> Any:
    try:
        items = json.loads(req(p, "batchOrders"))
    except json.JSONDecodeError:
        raise err(-1130, "batchOrders") from None
    if not isinstance(items, list) or not 1 <= len(items) <= 5:
        raise SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
    out: list[Any] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise err(-1130, "batchOrders")
            out.append(new_order(ctx, {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in item.items()}))
        except SimError as e:
            out.append(e.body())
    return out


# ----------------------------------------------------------------------------- algo orders


def new_algo(ctx: SimContext, p: Params) -> Any:
    if p.get("algoType") != "CONDITIONAL":
        if not p.get("algoType"):
            raise err(-1102, "algoType")
        raise err(-1130, "algoType")
    sym = _symbol(ctx, p)
    spec = ctx.spec(sym)
    close = flag(p, "closePosition")
    kwargs: dict[str, Any] = dict(
        symbol=sym, side=enum(Side, p, "side", code=-1117), order_type=enum(OrderType, p, "type", code=-1116),
        now_ms=ctx.now_ms, quantity=dec(p, "quantity"), trigger_price=dec(p, "triggerPrice"),
        price=dec(p, "price"), working_type=enum(WorkingType, p, "workingType", WorkingType.CONTRACT_PRICE),
        close_position=close, reduce_only=flag(p, "reduceOnly"),
        time_in_force=enum(TimeInForce, p, "timeInForce", TimeInForce.GTC), price_protect=flag(p, "priceProtect"),
        activate_price=dec(p, "activatePrice"), callback_rate=dec(p, "callbackRate"),
        client_algo_id=p.get("clientAlgoId") or None,
        position_side=enum(PositionSide, p, "positionSide", PositionSide.BOTH),
    )
    eng = ctx.venue.engine
    a = eng.place_algo(**kwargs)
    if ctx.faults.reject_algos > 0:
        # Fault: the Algo Service accepted the order, then rejects it (ALGO_UPDATE REJECTED).
        ctx.faults.reject_algos -= 1
        eng.reject_algo(a.algo_id, ctx.now_ms, "Simulated rejection")
    return render.algo(spec, a)


def _algo_ref(p: Params) -> tuple[int | None, str | None]:
    aid = integer(p, "algoId")
    cid = p.get("clientAlgoId") or None
    if aid is None and cid is None:
        raise SimError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
    return aid, cid


def query_algo(ctx: SimContext, p: Params) -> Any:
    aid, cid = _algo_ref(p)
    a = ctx.venue.engine.get_algo(algo_id=aid, client_algo_id=cid)
    return render.algo(ctx.spec(a.symbol), a, query=True)


def cancel_algo(ctx: SimContext, p: Params) -> Any:
    aid, cid = _algo_ref(p)
    a = ctx.venue.engine.cancel_algo(now_ms=ctx.now_ms, algo_id=aid, client_algo_id=cid)
    return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}


def open_algos(ctx: SimContext, p: Params) -> Any:
    sym = p.get("symbol") or None
    if sym:
        ctx.spec(sym)
    algos = ctx.venue.engine.open_algos(sym)
    aid = integer(p, "algoId")
    return [render.algo(ctx.spec(a.symbol), a, query=True) for a in algos if aid is None or a.algo_id == aid]


def cancel_all_algos(ctx: SimContext, p: Params) -> Any:
    ctx.venue.engine.cancel_all_algos(_symbol(ctx, p), ctx.now_ms)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def all_algos(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    start, end = integer(p, "startTime"), integer(p, "endTime")
    limit = min(integer(p, "limit") or 500, 1000)
    aid = integer(p, "algoId")
    rows = [a for a in ctx.venue.engine.algos.values() if a.symbol == sym
            and (aid is None or a.algo_id >= aid) and (start is None or a.create_ms >= start)
            and (end is None or a.create_ms <= end)]
    return [render.algo(ctx.spec(a.symbol), a, query=True) for a in rows[:limit]]


# ----------------------------------------------------------------------------- account


def _states(ctx: SimContext) -> list[Any]:
    eng = ctx.venue.engine
    return [eng.position_state(s) for s in ctx.venue.specs]


def position_risk_v3(ctx: SimContext, p: Params) -> Any:
    eng = ctx.venue.engine
    sym = p.get("symbol") or None
    out = []
    for st in _states(ctx):
        if sym and st.symbol != sym:
            continue
        if not st.qty and not eng.open_orders(st.symbol):
            continue  # v3 lists only symbols with a position or open orders
        out.append(render.position_v3(st, eng.open_order_margin(st.symbol), eng.specs[st.symbol].maint_rate))
    return out


def position_risk_v2(ctx: SimContext, p: Params) -> Any:
    sym = p.get("symbol") or None
    return [render.position_v2(st, ctx.venue.specs[st.symbol].max_notional) for st in _states(ctx)
            if not sym or st.symbol == sym]


def _totals(ctx: SimContext) -> dict[str, Any]:
    eng = ctx.venue.engine
    acct = eng.account
    states = [s for s in _states(ctx) if s.qty]
    upnl = sum((s.unrealized for s in states), Decimal(0))
    pos_im = sum((abs(s.qty * s.mark_price) / s.leverage for s in states), Decimal(0))
    maint = sum((abs(s.qty * s.mark_price) * eng.specs[s.symbol].maint_rate for s in states), Decimal(0))
    oo_im = eng.open_order_margin()
    avail = max(Decimal(0), eng.available_balance())
    m = render.money
    return {
        "totalInitialMargin": m(pos_im + oo_im), "totalMaintMargin": m(maint), "totalWalletBalance": m(acct.wallet),
        "totalUnrealizedProfit": m(upnl), "totalMarginBalance": m(acct.wallet + upnl),
        "totalPositionInitialMargin": m(pos_im), "totalOpenOrderInitialMargin": m(oo_im),
        "totalCrossWalletBalance": m(acct.cross_wallet()), "totalCrossUnPnl": m(upnl),
        "availableBalance": m(avail), "maxWithdrawAmount": m(min(avail, acct.wallet)),
    }


def _asset(ctx: SimContext, t: dict[str, Any], v2: bool) -> dict[str, Any]:
    a = {
        "asset": "USDT", "walletBalance": t["totalWalletBalance"], "unrealizedProfit": t["totalUnrealizedProfit"],
        "marginBalance": t["totalMarginBalance"], "maintMargin": t["totalMaintMargin"],
        "initialMargin": t["totalInitialMargin"], "positionInitialMargin": t["totalPositionInitialMargin"],
        "openOrderInitialMargin": t["totalOpenOrderInitialMargin"], "crossWalletBalance": t["totalCrossWalletBalance"],
        "crossUnPnl": t["totalCrossUnPnl"], "availableBalance": t["availableBalance"],
        "maxWithdrawAmount": t["maxWithdrawAmount"], "updateTime": ctx.now_ms,
    }
    if v2:
        a["marginAvailable"] = True
    return a


def account_v3(ctx: SimContext, p: Params) -> Any:
    t = _totals(ctx)
    eng = ctx.venue.engine
    positions = []
    for s in _states(ctx):
        if not s.qty:
            continue
        notional = s.qty * s.mark_price
        im = abs(notional) / s.leverage
        positions.append({
            "symbol": s.symbol, "positionSide": "BOTH", "positionAmt": render.num(s.qty),
            "unrealizedProfit": render.money(s.unrealized), "isolatedMargin": render.money(s.isolated_wallet),
            "notional": render.money(notional), "isolatedWallet": render.money(s.isolated_wallet),
            "initialMargin": render.money(im), "maintMargin": render.money(abs(notional) * eng.specs[s.symbol].maint_rate),
            "updateTime": s.update_ms,
        })
    return {**t, "assets": [_asset(ctx, t, False)], "positions": positions}


def account_v2(ctx: SimContext, p: Params) -> Any:
    t = _totals(ctx)
    eng = ctx.venue.engine
    positions = []
    for s in _states(ctx):
        notional = s.qty * s.mark_price
        im = abs(notional) / s.leverage
        positions.append({
            "symbol": s.symbol, "initialMargin": render.money(im),
            "maintMargin": render.money(abs(notional) * eng.specs[s.symbol].maint_rate),
            "unrealizedProfit": render.money(s.unrealized), "positionInitialMargin": render.money(im),
            "openOrderInitialMargin": render.money(eng.open_order_margin(s.symbol)), "leverage": str(s.leverage),
            "isolated": s.margin_type is MarginType.ISOLATED, "entryPrice": render.num(s.entry_price),
            "maxNotional": render.num(eng.specs[s.symbol].max_notional), "bidNotional": "0", "askNotional": "0",
            "positionSide": "BOTH", "positionAmt": render.num(s.qty), "updateTime": s.update_ms,
        })
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
            "multiAssetsMargin": False, "tradeGroupId": -1, **t, "assets": [_asset(ctx, t, True)],
            "positions": positions}


def balance(ctx: SimContext, p: Params) -> Any:
    t = _totals(ctx)
    return [{"accountAlias": "SimUSDM", "asset": "USDT", "balance": t["totalWalletBalance"],
             "crossWalletBalance": t["totalCrossWalletBalance"], "crossUnPnl": t["totalCrossUnPnl"],
             "availableBalance": t["availableBalance"], "maxWithdrawAmount": t["maxWithdrawAmount"],
             "marginAvailable": True, "updateTime": ctx.now_ms}]


def set_leverage(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    lev = integer(p, "leverage")
    if lev is None:
        raise err(-1102, "leverage")
    ctx.venue.engine.set_leverage(sym, lev, ctx.now_ms)
    return {"leverage": lev, "maxNotionalValue": render.num(ctx.venue.specs[sym].max_notional), "symbol": sym}


def set_margin_type(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    raw = req(p, "marginType").upper()
    mt = {"ISOLATED": MarginType.ISOLATED, "CROSSED": MarginType.CROSSED, "CROSS": MarginType.CROSSED}.get(raw)
    if mt is None:
        raise err(-1130, "marginType")
    ctx.venue.engine.set_margin_type(sym, mt, ctx.now_ms)
    return {"code": 200, "msg": "success"}


def set_dual(ctx: SimContext, p: Params) -> Any:
    req(p, "dualSidePosition")
    ctx.venue.engine.set_dual_side(flag(p, "dualSidePosition"))
    return {"code": 200, "msg": "success"}


def get_dual(ctx: SimContext, p: Params) -> Any:
    return {"dualSidePosition": ctx.venue.engine.account.dual_side}


def symbol_config(ctx: SimContext, p: Params) -> Any:
    sym = p.get("symbol") or None
    out = []
    for s, spec in ctx.venue.specs.items():
        if sym and s != sym:
            continue
        pos = ctx.venue.engine.account.position(s)
        out.append({"symbol": s, "marginType": pos.margin_type.value, "isAutoAddMargin": False,
                    "leverage": pos.leverage, "maxNotionalValue": render.num(spec.max_notional)})
    return out


def user_trades(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    start, end = integer(p, "startTime"), integer(p, "endTime")
    limit = min(integer(p, "limit") or 500, 1000)
    oid = integer(p, "orderId")
    rows = [t for t in ctx.venue.engine.trades if t.symbol == sym and (oid is None or t.order_id == oid)
            and (start is None or t.time_ms >= start) and (end is None or t.time_ms <= end)]
    rows = rows[:limit] if start is not None else rows[-limit:]
    return [render.trade(ctx.spec(sym), t) for t in rows]


def income(ctx: SimContext, p: Params) -> Any:
    sym, kind = p.get("symbol") or None, p.get("incomeType") or None
    start, end = integer(p, "startTime"), integer(p, "endTime")
    limit = min(integer(p, "limit") or 100, 1000)
    rows = [e for e in ctx.venue.engine.account.ledger if (sym is None or e.symbol == sym)
            and (kind is None or e.income_type == kind) and (start is None or e.time_ms >= start)
            and (end is None or e.time_ms <= end)]
    rows = rows[:limit] if start is not None else rows[-limit:]
    return [render.income(e) for e in rows]


def commission_rate(ctx: SimContext, p: Params) -> Any:
    sym = _symbol(ctx, p)
    cfg = ctx.venue.engine.config
    return {"symbol": sym, "makerCommissionRate": render.num(cfg.maker_fee),
            "takerCommissionRate": render.num(cfg.taker_fee)}


# ----------------------------------------------------------------------------- listenKey


def _key_alive(ctx: SimContext) -> bool:
    return ctx.listen_key is not None and ctx.now_ms < ctx.listen_key_expiry_ms


def listen_key_new(ctx: SimContext, p: Params) -> Any:
    if not _key_alive(ctx):  # an active key is returned again and extended
        ctx.listen_key = secrets.token_urlsafe(48)[:64]
    ctx.listen_key_expiry_ms = ctx.now_ms + ctx.listen_key_ttl_ms
    return {"listenKey": ctx.listen_key}


def listen_key_keepalive(ctx: SimContext, p: Params) -> Any:
    if not _key_alive(ctx):
        raise err(-1125)
    ctx.listen_key_expiry_ms = ctx.now_ms + ctx.listen_key_ttl_ms
    return {"listenKey": ctx.listen_key}


def listen_key_close(ctx: SimContext, p: Params) -> Any:
    ctx.listen_key = None
    ctx.listen_key_expiry_ms = 0
    return {}


# ----------------------------------------------------------------------------- routing table

Handler = Callable[[SimContext, Params], Any]
Weight = Callable[[Params], int]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    security: Security
    weight: Weight
    orders: int = 0  # counts on X-MBX-ORDER-COUNT-*


def w(n: int) -> Weight:
    return lambda _p: n


N, U, S = Security.NONE, Security.USER_STREAM, Security.SIGNED
ROUTES: tuple[Route, ...] = (
    Route("GET", "/fapi/v1/ping", ping, N, w(1)),
    Route("GET", "/fapi/v1/time", server_time, N, w(1)),
    Route("GET", "/fapi/v1/exchangeInfo", exchange_info, N, w(1)),
    Route("GET", "/fapi/v1/klines", klines, N, klines_weight),
    Route("GET", "/fapi/v1/premiumIndex", premium_index, N, by_symbol(1, 10)),
    Route("GET", "/fapi/v1/fundingRate", funding_rate, N, w(1)),
    Route("POST", "/fapi/v1/order", new_order, S, w(0), orders=1),
    Route("GET", "/fapi/v1/order", query_order, S, w(1)),
    Route("DELETE", "/fapi/v1/order", cancel_order, S, w(1)),
    Route("GET", "/fapi/v1/openOrders", open_orders, S, by_symbol(1, 40)),
    Route("GET", "/fapi/v1/allOrders", all_orders, S, w(5)),
    Route("GET", "/fapi/v2/ticker/price", ticker_price, N, by_symbol(1, 2)),
    Route("GET", "/fapi/v1/ticker/bookTicker", book_ticker, N, by_symbol(2, 5)),
    Route("DELETE", "/fapi/v1/allOpenOrders", cancel_all_orders, S, w(1)),
    Route("POST", "/fapi/v1/batchOrders", batch_orders, S, w(5), orders=5),
    Route("POST", "/fapi/v1/algoOrder", new_algo, S, w(0), orders=1),
    Route("GET", "/fapi/v1/algoOrder", query_algo, S, w(1)),
    Route("DELETE", "/fapi/v1/algoOrder", cancel_algo, S, w(1)),
    Route("GET", "/fapi/v1/openAlgoOrders", open_algos, S, by_symbol(1, 40)),
    Route("DELETE", "/fapi/v1/algoOpenOrders", cancel_all_algos, S, w(1)),
    Route("GET", "/fapi/v1/allAlgoOrders", all_algos, S, w(5)),
    Route("GET", "/fapi/v2/positionRisk", position_risk_v2, S, w(5)),
    Route("GET", "/fapi/v3/positionRisk", position_risk_v3, S, w(5)),
    Route("GET", "/fapi/v1/symbolConfig", symbol_config, S, w(5)),
    Route("GET", "/fapi/v2/account", account_v2, S, w(5)),
    Route("GET", "/fapi/v3/account", account_v3, S, w(5)),
    Route("GET", "/fapi/v2/balance", balance, S, w(5)),
    Route("GET", "/fapi/v3/balance", balance, S, w(5)),
    Route("POST", "/fapi/v1/leverage", set_leverage, S, w(1)),
    Route("POST", "/fapi/v1/marginType", set_margin_type, S, w(1)),
    Route("POST", "/fapi/v1/positionSide/dual", set_dual, S, w(1)),
    Route("GET", "/fapi/v1/positionSide/dual", get_dual, S, w(30)),
    Route("GET", "/fapi/v1/userTrades", user_trades, S, w(5)),
    Route("GET", "/fapi/v1/income", income, S, w(30)),
    Route("GET", "/fapi/v1/commissionRate", commission_rate, S, w(20)),
    Route("POST", "/fapi/v1/listenKey", listen_key_new, U, w(1)),
    Route("PUT", "/fapi/v1/listenKey", listen_key_keepalive, U, w(1)),
    Route("DELETE", "/fapi/v1/listenKey", listen_key_close, U, w(1)),
)
