"""REST market-data endpoints of the simulator: ping, time, exchangeInfo, klines, premiumIndex,
fundingRate, ticker price and bookTicker."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.types import Timeframe
from exchanges.sim import render
from exchanges.sim.errors import SimError
from exchanges.sim.feed import kline_rows, next_funding_time
from exchanges.sim.rest import Params, SimContext, integer, req, symbol_param


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
    weight_1m, orders_1m, orders_10s = ctx.rate_limits  # the limits the server enforces
    return {
        "timezone": "UTC", "serverTime": ctx.now_ms, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_1m},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": orders_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_10s},
        ],
        "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def klines(ctx: SimContext, p: Params) -> Any:
    sym = symbol_param(ctx, p)
    try:
        tf = Timeframe(req(p, "interval"))
    except ValueError:
        raise SimError(-1120, "Invalid interval.") from None
    limit = integer(p, "limit") or 500
    if not 1 <= limit <= 1500:
        raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = integer(p, "startTime"), integer(p, "endTime")
    rows = kline_rows(ctx.venue.data[sym], tf, now_ms=ctx.now_ms + 1, start_ms=start, end_ms=end, limit=limit)
    spec = ctx.spec(sym)
    out = [render.kline_row(spec, c) for c in rows]
    live = ctx.venue.kline_in_progress(sym, tf)
    # Binance includes the bar still in progress when the range reaches it.
    if live is not None and (end is None or end >= live.open_time_ms) and (start is None or start <= live.open_time_ms):
        if not out or out[-1][0] < live.open_time_ms:
            out.append(render.kline_row(spec, live))
            if len(out) > limit:
                out = out[-limit:] if start is None else out[:limit]
    return out


def _premium(ctx: SimContext, sym: str) -> dict[str, Any]:
    mark = ctx.venue.engine.mark_price(sym) or Decimal(0)
    rate = ctx.venue.current_funding_estimate(sym)
    m = render.money(mark)  # 8 decimals, as Binance writes mark/index prices
    return {"symbol": sym, "markPrice": m, "indexPrice": m, "estimatedSettlePrice": m,
            "lastFundingRate": render.num(rate), "interestRate": "0.00010000",
            "nextFundingTime": next_funding_time(ctx.now_ms), "time": ctx.now_ms}


def premium_index(ctx: SimContext, p: Params) -> Any:
    if p.get("symbol"):
        return _premium(ctx, symbol_param(ctx, p))
    return [_premium(ctx, s) for s in ctx.venue.specs]


def funding_rate(ctx: SimContext, p: Params) -> Any:
    sym = symbol_param(ctx, p)
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


def ticker_price(ctx: SimContext, p: Params) -> Any:
    def one(sym: str) -> dict[str, Any]:
        last = ctx.venue.engine.last_price(sym) or Decimal(0)
        return {"symbol": sym, "price": render.num(last), "time": ctx.now_ms}
    return one(symbol_param(ctx, p)) if p.get("symbol") else [one(s) for s in ctx.venue.specs]


def book_ticker(ctx: SimContext, p: Params) -> Any:
    # No order book is simulated: bid = ask = last price (see matching.py).
    def one(sym: str) -> dict[str, Any]:
        last = render.num(ctx.venue.engine.last_price(sym) or Decimal(0))
        return {"symbol": sym, "bidPrice": last, "bidQty": "1", "askPrice": last, "askQty": "1",
                "time": ctx.now_ms}
    return one(symbol_param(ctx, p)) if p.get("symbol") else [one(s) for s in ctx.venue.specs]
