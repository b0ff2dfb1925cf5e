"""The simulator's REST routing table: path, method, security type, request weight, order count.

Weights and order counts from BINANCE.md §2–§4 (IP weight per request; ORDERS counted on
``X-MBX-ORDER-COUNT-10S/1M``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchanges.sim import rest_account as acc
from exchanges.sim import rest_market as mkt
from exchanges.sim import rest_orders as ords
from exchanges.sim.limits import by_symbol, klines_weight
from exchanges.sim.rest import Params, Security, SimContext

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
    Route("GET", "/fapi/v1/ping", mkt.ping, N, w(1)),
    Route("GET", "/fapi/v1/time", mkt.server_time, N, w(1)),
    Route("GET", "/fapi/v1/exchangeInfo", mkt.exchange_info, N, w(1)),
    Route("GET", "/fapi/v1/klines", mkt.klines, N, klines_weight),
    Route("GET", "/fapi/v1/premiumIndex", mkt.premium_index, N, by_symbol(1, 10)),
    Route("GET", "/fapi/v1/fundingRate", mkt.funding_rate, N, w(1)),
    Route("POST", "/fapi/v1/order", ords.new_order, S, w(0), orders=1),
    Route("GET", "/fapi/v1/order", ords.query_order, S, w(1)),
    Route("DELETE", "/fapi/v1/order", ords.cancel_order, S, w(1)),
    Route("GET", "/fapi/v1/openOrders", ords.open_orders, S, by_symbol(1, 40)),
    Route("GET", "/fapi/v1/allOrders", ords.all_orders, S, w(5)),
    Route("GET", "/fapi/v2/ticker/price", mkt.ticker_price, N, by_symbol(1, 2)),
    Route("GET", "/fapi/v1/ticker/bookTicker", mkt.book_ticker, N, by_symbol(2, 5)),
    Route("DELETE", "/fapi/v1/allOpenOrders", ords.cancel_all_orders, S, w(1)),
    Route("DELETE", "/fapi/v1/batchOrders", ords.cancel_batch, S, w(1)),
    Route("GET", "/fapi/v1/openOrder", ords.open_order, S, w(1)),
    Route("POST", "/fapi/v1/batchOrders", ords.batch_orders, S, w(5), orders=5),
    Route("POST", "/fapi/v1/algoOrder", ords.new_algo, S, w(0), orders=1),
    Route("GET", "/fapi/v1/algoOrder", ords.query_algo, S, w(1)),
    Route("DELETE", "/fapi/v1/algoOrder", ords.cancel_algo, S, w(1)),
    Route("GET", "/fapi/v1/openAlgoOrders", ords.open_algos, S, by_symbol(1, 40)),
    Route("DELETE", "/fapi/v1/algoOpenOrders", ords.cancel_all_algos, S, w(1)),
    Route("GET", "/fapi/v1/allAlgoOrders", ords.all_algos, S, w(5)),
    Route("GET", "/fapi/v2/positionRisk", acc.position_risk_v2, S, w(5)),
    Route("GET", "/fapi/v3/positionRisk", acc.position_risk_v3, S, w(5)),
    Route("GET", "/fapi/v1/symbolConfig", acc.symbol_config, S, w(5)),
    Route("GET", "/fapi/v2/account", acc.account_v2, S, w(5)),
    Route("GET", "/fapi/v3/account", acc.account_v3, S, w(5)),
    Route("GET", "/fapi/v2/balance", acc.balance, S, w(5)),
    Route("GET", "/fapi/v3/balance", acc.balance, S, w(5)),
    Route("POST", "/fapi/v1/leverage", acc.set_leverage, S, w(1)),
    Route("POST", "/fapi/v1/marginType", acc.set_margin_type, S, w(1)),
    Route("POST", "/fapi/v1/positionSide/dual", acc.set_dual, S, w(1)),
    Route("GET", "/fapi/v1/positionSide/dual", acc.get_dual, S, w(30)),
    Route("GET", "/fapi/v1/accountConfig", acc.account_config, S, w(5)),
    Route("GET", "/fapi/v1/multiAssetsMargin", acc.multi_assets_margin, S, w(30)),
    Route("GET", "/fapi/v1/userTrades", acc.user_trades, S, w(5)),
    Route("GET", "/fapi/v1/income", acc.income, S, w(30)),
    Route("GET", "/fapi/v1/commissionRate", acc.commission_rate, S, w(20)),
    Route("POST", "/fapi/v1/listenKey", acc.listen_key_new, U, w(1)),
    Route("PUT", "/fapi/v1/listenKey", acc.listen_key_keepalive, U, w(1)),
    Route("DELETE", "/fapi/v1/listenKey", acc.listen_key_close, U, w(1)),
)
