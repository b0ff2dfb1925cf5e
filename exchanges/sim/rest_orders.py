"""REST order endpoints of the simulator: regular orders (order, openOrders, allOrders,
allOpenOrders, batchOrders) and conditional orders (algoOrder, openAlgoOrders,
algoOpenOrders, allAlgoOrders)."""

from __future__ import annotations

import json
from typing import Any

from core.types import OrderType, PositionSide, ResponseType, Side, TimeInForce, WorkingType
from exchanges.sim import render
from exchanges.sim.errors import SimError, err
from exchanges.sim.records import OrderEvent
from exchanges.sim.rest import Params, SimContext, dec, enum, flag, integer, req, symbol_param


def _place(ctx: SimContext, p: Params) -> dict[str, Any]:
    sym = symbol_param(ctx, p)
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
    sym = symbol_param(ctx, p)
    oid, cid = _order_ref(p)
    return render.order(ctx.spec(sym), ctx.venue.engine.get_order(sym, order_id=oid, client_order_id=cid), query=True)


def cancel_order(ctx: SimContext, p: Params) -> Any:
    sym = symbol_param(ctx, p)
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


def cancel_all_orders(ctx: SimContext, p: Params) -> Any:
    ctx.venue.engine.cancel_all(symbol_param(ctx, p), ctx.now_ms)
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


def cancel_batch(ctx: SimContext, p: Params) -> Any:
    """DELETE /fapi/v1/batchOrders: ``orderIdList`` or ``origClientOrderIdList`` (JSON, max 10)."""
    sym = symbol_param(ctx, p)
    raw_ids, raw_cids = p.get("orderIdList"), p.get("origClientOrderIdList")
    if not raw_ids and not raw_cids:
        raise SimError(-1102, "Param 'origClientOrderIdList' or 'orderIdList' must be sent, but both were empty/null!")
    try:
        refs = json.loads(raw_ids) if raw_ids else json.loads(raw_cids or "[]")
    except json.JSONDecodeError:
        raise err(-1130, "orderIdList" if raw_ids else "origClientOrderIdList") from None
    if not isinstance(refs, list) or not 1 <= len(refs) <= 10:
        raise err(-1130, "orderIdList" if raw_ids else "origClientOrderIdList")
    out: list[Any] = []
    for ref in refs:
        try:
            o = ctx.venue.engine.cancel_order(sym, now_ms=ctx.now_ms, order_id=int(ref) if raw_ids else None,
                                              client_order_id=None if raw_ids else str(ref))
            out.append(render.order(ctx.spec(sym), o))
        except SimError as e:
            out.append(e.body())
        except ValueError:
            out.append(err(-1130, "orderIdList").body())
    return out


def open_order(ctx: SimContext, p: Params) -> Any:
    """GET /fapi/v1/openOrder: one open order; -2013 when it is not open (any more)."""
    sym = symbol_param(ctx, p)
    oid, cid = _order_ref(p)
    o = ctx.venue.engine.get_order(sym, order_id=oid, client_order_id=cid)
    if not o.status.is_open:
        raise SimError(-2013, "Order does not exist.")
    return render.order(ctx.spec(sym), o, query=True)


# ----------------------------------------------------------------------------- algo orders


def new_algo(ctx: SimContext, p: Params) -> Any:
    if p.get("algoType") != "CONDITIONAL":
        if not p.get("algoType"):
            raise err(-1102, "algoType")
        raise err(-1130, "algoType")
    sym = symbol_param(ctx, p)
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
    ctx.venue.engine.cancel_all_algos(symbol_param(ctx, p), ctx.now_ms)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def all_algos(ctx: SimContext, p: Params) -> Any:
    sym = symbol_param(ctx, p)
    start, end = integer(p, "startTime"), integer(p, "endTime")
    limit = min(integer(p, "limit") or 500, 1000)
    aid = integer(p, "algoId")
    rows = [a for a in ctx.venue.engine.algos.values() if a.symbol == sym
            and (aid is None or a.algo_id >= aid) and (start is None or a.create_ms >= start)
            and (end is None or a.create_ms <= end)]
    return [render.algo(ctx.spec(a.symbol), a, query=True) for a in rows[:limit]]
