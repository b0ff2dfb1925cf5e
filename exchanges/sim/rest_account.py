"""REST account endpoints of the simulator: positionRisk v2/v3, account v2/v3, balance, leverage,
marginType, positionSide/dual, accountConfig, multiAssetsMargin, symbolConfig, userTrades, income, commissionRate, listenKey."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from core.types import MarginType
from exchanges.sim import render
from exchanges.sim.errors import err
from exchanges.sim.rest import Params, SimContext, flag, integer, req, symbol_param


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
    sym = symbol_param(ctx, p)
    lev = integer(p, "leverage")
    if lev is None:
        raise err(-1102, "leverage")
    ctx.venue.engine.set_leverage(sym, lev, ctx.now_ms)
    return {"leverage": lev, "maxNotionalValue": render.num(ctx.venue.specs[sym].max_notional), "symbol": sym}


def set_margin_type(ctx: SimContext, p: Params) -> Any:
    sym = symbol_param(ctx, p)
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


def account_config(ctx: SimContext, p: Params) -> Any:
    """GET /fapi/v1/accountConfig: the simulated account is always single-asset (USDT margin)."""
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "dualSidePosition": ctx.venue.engine.account.dual_side, "updateTime": 0,
            "multiAssetsMargin": False, "tradeGroupId": -1}


def multi_assets_margin(ctx: SimContext, p: Params) -> Any:
    """GET /fapi/v1/multiAssetsMargin: multi-assets mode is not simulated, so always off."""
    return {"multiAssetsMargin": False}


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
    sym = symbol_param(ctx, p)
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
    sym = symbol_param(ctx, p)
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
