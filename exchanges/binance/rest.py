"""One coroutine per Binance USD-M REST endpoint; responses become kernel records.

Docs root: https://developers.binance.com/docs/derivatives/usds-margined-futures — each
docstring names the verb, the path and the page under that root. Numbers leave as plain
strings formatted from Decimal (see ``schemas.order_params``); nothing here retries or
classifies errors — that is ``http.py``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from core.errors import Rejected
from core.types import (
    AlgoOrder,
    Balance,
    Candle,
    CommissionRate,
    Fill,
    FundingRate,
    Income,
    MarginType,
    MarkPrice,
    Order,
    Position,
    RateLimitRule,
    SymbolRules,
    Timeframe,
)
from exchanges.binance import schemas
from exchanges.binance.http import TIME, BinanceHttp, Endpoint, Params, Security
from exchanges.binance.limits import Lane

KLINES_MAX = 1500

_N, _K, _S = Security.NONE, Security.USER_STREAM, Security.SIGNED
PING = Endpoint("GET", "/fapi/v1/ping", _N, "market_data")
EXCHANGE_INFO = Endpoint("GET", "/fapi/v1/exchangeInfo", _N, "market_data")
KLINES = Endpoint("GET", "/fapi/v1/klines", _N, "market_data")
PREMIUM_INDEX = Endpoint("GET", "/fapi/v1/premiumIndex", _N, "market_data")
FUNDING_RATE = Endpoint("GET", "/fapi/v1/fundingRate", _N, "market_data")
NEW_ORDER = Endpoint("POST", "/fapi/v1/order", _S, "orders")
QUERY_ORDER = Endpoint("GET", "/fapi/v1/order", _S, "orders")
CANCEL_ORDER = Endpoint("DELETE", "/fapi/v1/order", _S, "orders")
BATCH_ORDERS = Endpoint("POST", "/fapi/v1/batchOrders", _S, "orders")
OPEN_ORDERS = Endpoint("GET", "/fapi/v1/openOrders", _S, "orders")
CANCEL_ALL = Endpoint("DELETE", "/fapi/v1/allOpenOrders", _S, "orders")
NEW_ALGO = Endpoint("POST", "/fapi/v1/algoOrder", _S, "orders")
QUERY_ALGO = Endpoint("GET", "/fapi/v1/algoOrder", _S, "orders")
CANCEL_ALGO = Endpoint("DELETE", "/fapi/v1/algoOrder", _S, "orders")
OPEN_ALGO = Endpoint("GET", "/fapi/v1/openAlgoOrders", _S, "orders")
CANCEL_ALL_ALGO = Endpoint("DELETE", "/fapi/v1/algoOpenOrders", _S, "orders")
POSITION_RISK = Endpoint("GET", "/fapi/v3/positionRisk", _S, "account")
SYMBOL_CONFIG = Endpoint("GET", "/fapi/v1/symbolConfig", _S, "account")
ACCOUNT = Endpoint("GET", "/fapi/v3/account", _S, "account")
BALANCE = Endpoint("GET", "/fapi/v3/balance", _S, "account")
LEVERAGE = Endpoint("POST", "/fapi/v1/leverage", _S, "account")
MARGIN_TYPE = Endpoint("POST", "/fapi/v1/marginType", _S, "account")
GET_DUAL = Endpoint("GET", "/fapi/v1/positionSide/dual", _S, "account")
SET_DUAL = Endpoint("POST", "/fapi/v1/positionSide/dual", _S, "account")
MULTI_ASSETS = Endpoint("GET", "/fapi/v1/multiAssetsMargin", _S, "account")
LISTEN_KEY_NEW = Endpoint("POST", "/fapi/v1/listenKey", _K, "account")
LISTEN_KEY_KEEP = Endpoint("PUT", "/fapi/v1/listenKey", _K, "account")
LISTEN_KEY_CLOSE = Endpoint("DELETE", "/fapi/v1/listenKey", _K, "account")
USER_TRADES = Endpoint("GET", "/fapi/v1/userTrades", _S, "account")
INCOME = Endpoint("GET", "/fapi/v1/income", _S, "account")
COMMISSION = Endpoint("GET", "/fapi/v1/commissionRate", _S, "account")
ACCOUNT_CONFIG = Endpoint("GET", "/fapi/v1/accountConfig", _S, "account")
# Key permissions live on the spot API host (api.binance.com), not on fapi.
API_RESTRICTIONS = Endpoint("GET", "/sapi/v1/account/apiRestrictions", _S, "account")

NO_CHANGE_MARGIN_TYPE = -4046
NO_CHANGE_POSITION_SIDE = -4059


def _opt(**kwargs: Any) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in kwargs.items() if v is not None]


def _id_params(order_id: int | None, client_id: str | None, id_key: str, client_key: str) -> list[tuple[str, str]]:
    if order_id is None and not client_id:
        raise ValueError(f"{id_key} or {client_key} is required")
    return _opt(**{id_key: order_id}) if order_id is not None else [(client_key, str(client_id))]


class BinanceRest:
    """Typed endpoints over a ``BinanceHttp`` transport."""

    def __init__(self, http: BinanceHttp) -> None:
        self.http = http

    # -- market data -----------------------------------------------------------------

    async def ping(self) -> None:
        """GET /fapi/v1/ping — market-data/rest-api/Test-Connectivity."""
        await self.http.request(PING)

    async def server_time(self) -> int:
        """GET /fapi/v1/time — market-data/rest-api/Check-Server-Time."""
        return int((await self.http.request(TIME))["serverTime"])

    async def exchange_info(self) -> tuple[dict[str, SymbolRules], list[RateLimitRule]]:
        """GET /fapi/v1/exchangeInfo — market-data/rest-api/Exchange-Information."""
        return schemas.exchange_info(await self.http.request(EXCHANGE_INFO))

    async def klines(
        self, symbol: str, timeframe: Timeframe, *, start_ms: int | None = None,
        end_ms: int | None = None, limit: int = 500,
    ) -> list[Candle]:
        """GET /fapi/v1/klines — market-data/rest-api/Kline-Candlestick-Data (≤1500 rows)."""
        if not 1 <= limit <= KLINES_MAX:
            raise ValueError(f"klines limit must be in 1..{KLINES_MAX}")
        rows = await self.http.request(KLINES, _opt(
            symbol=symbol, interval=timeframe.value, startTime=start_ms, endTime=end_ms, limit=limit,
        ))
        return [schemas.candle_from_rest(row, symbol, timeframe) for row in rows]

    async def premium_index(self, symbol: str) -> MarkPrice:
        """GET /fapi/v1/premiumIndex — market-data/rest-api/Mark-Price."""
        return schemas.mark_price(await self.http.request(PREMIUM_INDEX, [("symbol", symbol)]))

    async def funding_rate(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 100
    ) -> list[FundingRate]:
        """GET /fapi/v1/fundingRate — market-data/rest-api/Get-Funding-Rate-History."""
        items = await self.http.request(FUNDING_RATE, _opt(
            symbol=symbol, startTime=start_ms, endTime=end_ms, limit=limit))
        return [schemas.funding_rate(i) for i in items]

    # -- regular orders ------------------------------------------------------------------

    async def new_order(self, params: Params, *, client_id: str, lane: Lane) -> Order:
        """POST /fapi/v1/order — trade/rest-api/New-Order (LIMIT/MARKET only since 2025-12-09)."""
        protective = lane <= Lane.CANCEL
        return schemas.order(await self.http.request(
            NEW_ORDER, params, lane=lane, protective=protective, client_id=client_id))

    async def batch_orders(self, orders: Sequence[Params], *, lane: Lane) -> list[Order | Rejected]:
        """POST /fapi/v1/batchOrders — trade/rest-api/Place-Multiple-Orders (≤5, concurrent).

        Each item of the answer is an order or ``{"code","msg"}``; both are returned in order.
        """
        if not 1 <= len(orders) <= 5:
            raise ValueError("batchOrders takes 1..5 orders")
        batch = orjson.dumps([dict(p) for p in orders]).decode()
        items = await self.http.request(BATCH_ORDERS, [("batchOrders", batch)], lane=lane,
                                        protective=lane <= Lane.CANCEL)
        out: list[Order | Rejected] = []
        for item in items:
            if "code" in item and "orderId" not in item:
                out.append(Rejected(int(item["code"]), str(item.get("msg", "")), endpoint=BATCH_ORDERS.path))
            else:
                out.append(schemas.order(item))
        return out

    async def query_order(self, symbol: str, *, order_id: int | None = None,
                          client_order_id: str | None = None) -> Order:
        """GET /fapi/v1/order — trade/rest-api/Query-Order (untriggered algo orders: -2013)."""
        params = [("symbol", symbol), *_id_params(order_id, client_order_id, "orderId", "origClientOrderId")]
        return schemas.order(await self.http.request(QUERY_ORDER, params, lane=Lane.CANCEL))

    async def cancel_order(self, symbol: str, *, order_id: int | None = None,
                           client_order_id: str | None = None) -> Order:
        """DELETE /fapi/v1/order — trade/rest-api/Cancel-Order."""
        params = [("symbol", symbol), *_id_params(order_id, client_order_id, "orderId", "origClientOrderId")]
        return schemas.order(await self.http.request(
            CANCEL_ORDER, params, lane=Lane.CANCEL, protective=True, client_id=client_order_id))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """GET /fapi/v1/openOrders — trade/rest-api/Current-All-Open-Orders (40 without symbol)."""
        items = await self.http.request(OPEN_ORDERS, _opt(symbol=symbol), lane=Lane.CANCEL)
        return [schemas.order(i) for i in items]

    async def cancel_all_orders(self, symbol: str) -> None:
        """DELETE /fapi/v1/allOpenOrders — trade/rest-api/Cancel-All-Open-Orders."""
        await self.http.request(CANCEL_ALL, [("symbol", symbol)], lane=Lane.CANCEL, protective=True)

    # -- algo orders (2025-12-09 migration: conditional orders live here) ------------------

    async def new_algo_order(self, params: Params, *, client_id: str, lane: Lane = Lane.PROTECT) -> AlgoOrder:
        """POST /fapi/v1/algoOrder — trade/rest-api/New-Algo-Order (algoType=CONDITIONAL).

        Since 2025-12-09 STOP/TAKE_PROFIT/TRAILING orders are refused by /fapi/v1/order (-4120).
        """
        return schemas.algo_order(await self.http.request(
            NEW_ALGO, params, lane=lane, protective=lane <= Lane.CANCEL, client_id=client_id))

    async def query_algo_order(self, *, algo_id: int | None = None, client_algo_id: str | None = None) -> AlgoOrder:
        """GET /fapi/v1/algoOrder — trade/rest-api/Query-Algo-Order."""
        params = _id_params(algo_id, client_algo_id, "algoId", "clientAlgoId")
        return schemas.algo_order(await self.http.request(QUERY_ALGO, params, lane=Lane.CANCEL))

    async def cancel_algo_order(self, *, algo_id: int | None = None, client_algo_id: str | None = None) -> None:
        """DELETE /fapi/v1/algoOrder — trade/rest-api/Cancel-Algo-Order (``code`` is a string here)."""
        params = _id_params(algo_id, client_algo_id, "algoId", "clientAlgoId")
        await self.http.request(CANCEL_ALGO, params, lane=Lane.CANCEL, protective=True,
                                client_id=client_algo_id)

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        """GET /fapi/v1/openAlgoOrders — trade/rest-api/Current-All-Algo-Open-Orders."""
        items = await self.http.request(OPEN_ALGO, _opt(symbol=symbol), lane=Lane.CANCEL)
        return [schemas.algo_order(i) for i in items]

    async def cancel_all_algo_orders(self, symbol: str) -> None:
        """DELETE /fapi/v1/algoOpenOrders — trade/rest-api/Cancel-All-Algo-Open-Orders."""
        await self.http.request(CANCEL_ALL_ALGO, [("symbol", symbol)], lane=Lane.CANCEL, protective=True)

    # -- account ---------------------------------------------------------------------------

    async def position_risk(self, symbol: str | None = None) -> list[Position]:
        """GET /fapi/v3/positionRisk — trade/rest-api/Position-Information-V3 (no leverage/marginType)."""
        items = await self.http.request(POSITION_RISK, _opt(symbol=symbol), lane=Lane.CANCEL)
        return [schemas.position(i) for i in items]

    async def symbol_config(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """GET /fapi/v1/symbolConfig — account/rest-api/Symbol-Config (leverage, marginType)."""
        return list(await self.http.request(SYMBOL_CONFIG, _opt(symbol=symbol)))

    async def account(self) -> dict[str, Any]:
        """GET /fapi/v3/account — account/rest-api/Account-Information-V3 (raw: preflight reads flags)."""
        return dict(await self.http.request(ACCOUNT))

    async def balances(self) -> list[Balance]:
        """GET /fapi/v3/balance — account/rest-api/Futures-Account-Balance-V3."""
        return [schemas.balance(i) for i in await self.http.request(BALANCE)]

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """POST /fapi/v1/leverage — trade/rest-api/Change-Initial-Leverage."""
        data = await self.http.request(LEVERAGE, [("symbol", symbol), ("leverage", str(leverage))])
        return int(data["leverage"])

    async def set_margin_type(self, symbol: str, margin_type: MarginType) -> None:
        """POST /fapi/v1/marginType — trade/rest-api/Change-Margin-Type (-4046 = already so)."""
        try:
            await self.http.request(MARGIN_TYPE, [("symbol", symbol), ("marginType", margin_type.value)])
        except Rejected as exc:
            if exc.code != NO_CHANGE_MARGIN_TYPE:
                raise

    async def get_position_mode(self) -> bool:
        """GET /fapi/v1/positionSide/dual — trade/rest-api/Get-Current-Position-Mode."""
        return bool((await self.http.request(GET_DUAL))["dualSidePosition"])

    async def set_position_mode(self, dual_side: bool) -> None:
        """POST /fapi/v1/positionSide/dual — trade/rest-api/Change-Position-Mode (-4059 = already so)."""
        try:
            await self.http.request(SET_DUAL, [("dualSidePosition", "true" if dual_side else "false")])
        except Rejected as exc:
            if exc.code != NO_CHANGE_POSITION_SIDE:
                raise

    async def multi_assets_mode(self) -> bool:
        """GET /fapi/v1/multiAssetsMargin — account/rest-api/Get-Current-Multi-Assets-Mode."""
        return bool((await self.http.request(MULTI_ASSETS))["multiAssetsMargin"])

    async def account_config(self) -> dict[str, Any]:
        """GET /fapi/v1/accountConfig — account/rest-api/Account-Config (canTrade, dualSidePosition, multiAssetsMargin)."""
        return dict(await self.http.request(ACCOUNT_CONFIG))

    async def api_restrictions(self) -> dict[str, Any]:
        """GET /sapi/v1/account/apiRestrictions — wallet/account/api-key-permission (spot host only)."""
        return dict(await self.http.request(API_RESTRICTIONS))

    async def user_trades(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
                          limit: int = 500) -> list[Fill]:
        """GET /fapi/v1/userTrades — trade/rest-api/Account-Trade-List (3 months of history)."""
        items = await self.http.request(USER_TRADES, _opt(
            symbol=symbol, startTime=start_ms, endTime=end_ms, limit=limit))
        return [schemas.user_trade(i) for i in items]

    async def income(self, *, symbol: str | None = None, income_type: str | None = None,
                     start_ms: int | None = None, end_ms: int | None = None, limit: int = 1000) -> list[Income]:
        """GET /fapi/v1/income — account/rest-api/Get-Income-History."""
        items = await self.http.request(INCOME, _opt(
            symbol=symbol, incomeType=income_type, startTime=start_ms, endTime=end_ms, limit=limit))
        return [schemas.income(i) for i in items]

    async def commission_rate(self, symbol: str) -> CommissionRate:
        """GET /fapi/v1/commissionRate — account/rest-api/User-Commission-Rate."""
        return schemas.commission_rate(await self.http.request(COMMISSION, [("symbol", symbol)]))

    # -- user data stream keys ------------------------------------------------------------------

    async def new_listen_key(self) -> str:
        """POST /fapi/v1/listenKey — user-data-streams/Start-User-Data-Stream (returns the live key)."""
        return str((await self.http.request(LISTEN_KEY_NEW, lane=Lane.CANCEL))["listenKey"])

    async def keepalive_listen_key(self) -> None:
        """PUT /fapi/v1/listenKey — user-data-streams/Keepalive-User-Data-Stream (-1125 if dead)."""
        await self.http.request(LISTEN_KEY_KEEP, lane=Lane.CANCEL)

    async def close_listen_key(self) -> None:
        """DELETE /fapi/v1/listenKey — user-data-streams/Close-User-Data-Stream."""
        await self.http.request(LISTEN_KEY_CLOSE, lane=Lane.CANCEL)
