"""Envelope-first decoding of websocket frames: read the event type, dispatch through a dict.

Market frames come wrapped as ``{"stream": …, "data": {…}}`` (combined streams); user-data
frames are bare. Malformed frames are logged (truncated), counted and skipped; unknown event
types are counted and ignored — a decoder never stops a stream. Fills are deduplicated by
(orderId, tradeId), because TRADE_LITE and ORDER_TRADE_UPDATE both report the same trade.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from core.events import FillUpdate, MarkPriceUpdate, OrderUpdate, UserEvent
from core.metrics import WS_MALFORMED
from core.types import Candle
from exchanges.binance import schemas
from exchanges.binance.schemas import WireError, dec, dec_req, req

log = logging.getLogger(__name__)

_SHOWN = 200  # characters of a bad frame that reach the log


@dataclass(frozen=True, slots=True)
class BookTicker:
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    update_id: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    symbol: str
    first_id: int
    last_id: int
    prev_last_id: int
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    buyer_is_maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    """Internal signal: the user stream's key died; the stream manager renews and reconciles."""

    event_time_ms: int


def _levels(rows: Any) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((dec(p, "price"), dec(q, "qty")) for p, q in rows or ())


def _book_ticker(d: Mapping[str, Any]) -> BookTicker:
    return BookTicker(str(req(d, "s")), dec_req(d, "b"), dec_req(d, "B"), dec_req(d, "a"), dec_req(d, "A"),
                      int(req(d, "u")), int(d.get("E") or 0))


def _depth(d: Mapping[str, Any]) -> DepthUpdate:
    return DepthUpdate(str(req(d, "s")), int(req(d, "U")), int(req(d, "u")), int(d.get("pu") or 0),
                       _levels(d.get("b")), _levels(d.get("a")), int(req(d, "E")))


def _trade(d: Mapping[str, Any]) -> Trade:
    trade_id = d.get("t", d.get("a"))  # trade stream: t; aggTrade: a
    return Trade(str(req(d, "s")), int(trade_id), dec_req(d, "p"), dec_req(d, "q"), bool(d.get("m")),
                 int(req(d, "T")))


def _kline(d: Mapping[str, Any]) -> Candle:
    return schemas.candle_from_ws(req(d, "k"))


MarketItem = Candle | MarkPriceUpdate | BookTicker | DepthUpdate | Trade

MARKET_HANDLERS: dict[str, Callable[[Mapping[str, Any]], MarketItem]] = {
    "kline": _kline,
    "markPriceUpdate": schemas.mark_price_update,
    "bookTicker": _book_ticker,
    "depthUpdate": _depth,
    "trade": _trade,
    "aggTrade": _trade,
}


def _listen_key_expired(d: Mapping[str, Any]) -> ListenKeyExpired:
    return ListenKeyExpired(int(req(d, "E")))  # docs example has E as a string; int() takes both


USER_HANDLERS: dict[str, Callable[[Mapping[str, Any]], UserEvent | ListenKeyExpired]] = {
    "ORDER_TRADE_UPDATE": schemas.order_trade_update,
    "TRADE_LITE": schemas.trade_lite,
    "ALGO_UPDATE": schemas.algo_update,
    "ACCOUNT_UPDATE": schemas.account_update,
    "ACCOUNT_CONFIG_UPDATE": schemas.account_config_update,
    "MARGIN_CALL": schemas.margin_call,
    "listenKeyExpired": _listen_key_expired,
}


class _Decoder:
    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.malformed = 0
        self.unknown = 0
        self.control = 0

    def _load(self, raw: bytes | str) -> Mapping[str, Any] | None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._bad(raw, f"not JSON: {exc}")
            return None
        if not isinstance(frame, dict):
            self._bad(raw, "not a JSON object")
            return None
        return frame

    def _bad(self, raw: bytes | str, why: str) -> None:
        self.malformed += 1
        WS_MALFORMED.labels(stream=self.stream, kind="malformed").inc()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        log.warning("skipping malformed %s frame (%s): %s", self.stream, why, text[:_SHOWN])

    def _unknown(self, event: object) -> None:
        self.unknown += 1
        WS_MALFORMED.labels(stream=self.stream, kind="unknown").inc()
        log.debug("ignoring unknown %s event %r", self.stream, event)


class MarketDecoder(_Decoder):
    """Combined-stream market frames → Candle / MarkPriceUpdate / BookTicker / DepthUpdate / Trade."""

    def decode(self, raw: bytes | str) -> MarketItem | None:
        frame = self._load(raw)
        if frame is None:
            return None
        if "result" in frame and "id" in frame:  # SUBSCRIBE acknowledgement
            self.control += 1
            return None
        data = frame.get("data", frame)
        if not isinstance(data, dict):
            self._bad(raw, "data is not an object")
            return None
        handler = MARKET_HANDLERS.get(data.get("e"))  # type: ignore[arg-type]
        if handler is None:
            self._unknown(data.get("e"))
            return None
        try:
            return handler(data)
        except (WireError, KeyError, TypeError, ValueError) as exc:
            self._bad(raw, str(exc))
            return None


class UserDecoder(_Decoder):
    """User-data frames → kernel user events, fills deduplicated by (orderId, tradeId)."""

    def __init__(self, stream: str = "user", *, dedupe_capacity: int = 50_000) -> None:
        super().__init__(stream)
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._capacity = dedupe_capacity
        self.duplicates = 0

    def _first_time(self, key: tuple[int, int]) -> bool:
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self._capacity:  # bounded: oldest trades are long settled
            self._seen.popitem(last=False)
        return True

    def decode(self, raw: bytes | str) -> UserEvent | ListenKeyExpired | None:
        frame = self._load(raw)
        if frame is None:
            return None
        data = frame.get("data", frame) if "e" not in frame else frame
        if not isinstance(data, dict):
            self._bad(raw, "data is not an object")
            return None
        handler = USER_HANDLERS.get(data.get("e"))  # type: ignore[arg-type]
        if handler is None:
            self._unknown(data.get("e"))
            return None
        try:
            event = handler(data)
        except (WireError, KeyError, TypeError, ValueError) as exc:
            self._bad(raw, str(exc))
            return None
        if isinstance(event, FillUpdate):
            return event if self._first_time(event.fill.key) else None
        if isinstance(event, OrderUpdate) and event.fill is not None:
            # Keep the fill even when TRADE_LITE reported the trade first: only this event carries
            # its commission and realized PnL (consumers deduplicate by (order_id, trade_id)).
            # Marking it seen drops a TRADE_LITE that trails it.
            self._first_time(event.fill.key)
        return event
