"""Base URLs of Binance USD-M futures and the routed websocket paths.

Since the 2026 websocket split (BINANCE.md §1) every stream must go to its route:
``/market`` for klines and mark price, ``/public`` for bookTicker and depth, ``/private``
for user data. A stream on the wrong route is acknowledged but never delivers data, so the
route is chosen here from the stream name, never by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote


class Route(str, Enum):
    """Websocket routes of the split stream service."""

    MARKET = "market"
    PUBLIC = "public"
    PRIVATE = "private"


# High-frequency streams live on /public; everything else Casino reads is on /market.
_PUBLIC_MARKERS = ("@bookticker", "@depth", "@rpidepth", "!bookticker")


def route_for(stream: str) -> Route:
    """The route a market stream name belongs to (``btcusdt@kline_1m`` → MARKET)."""
    name = stream.lower()
    if any(marker in name for marker in _PUBLIC_MARKERS):
        return Route.PUBLIC
    return Route.MARKET


@dataclass(frozen=True, slots=True)
class BinanceUrls:
    """REST base and websocket base (scheme + host, no trailing slash)."""

    rest: str
    ws: str

    def __post_init__(self) -> None:
        if not self.rest.startswith(("http://", "https://")):
            raise ValueError(f"REST base must be http(s)://, got {self.rest!r}")
        if not self.ws.startswith(("ws://", "wss://")):
            raise ValueError(f"stream base must be ws(s)://, got {self.ws!r}")
        object.__setattr__(self, "rest", self.rest.rstrip("/"))
        object.__setattr__(self, "ws", self.ws.rstrip("/"))

    def combined_stream(self, route: Route, streams: Sequence[str]) -> str:
        """``wss://host/<route>/stream?streams=a/b`` (frames arrive as {stream, data})."""
        if route is Route.PRIVATE:
            raise ValueError("user data uses private_stream(listen_key)")
        if not streams:
            raise ValueError("at least one stream is needed")
        wrong = [s for s in streams if route_for(s) is not route]
        if wrong:
            raise ValueError(f"streams {wrong} do not belong on /{route.value}")
        return f"{self.ws}/{route.value}/stream?streams={'/'.join(s.lower() for s in streams)}"

    def private_stream(self, listen_key: str) -> str:
        """``wss://host/private/ws?listenKey=<key>`` (raw frames, no envelope)."""
        return f"{self.ws}/private/ws?listenKey={quote(listen_key, safe='')}"


LIVE = BinanceUrls(rest="https://fapi.binance.com", ws="wss://fstream.binance.com")
# "Testnet" is Binance's Demo Trading since Oct 2025 (BINANCE.md §1).
DEMO = BinanceUrls(rest="https://demo-fapi.binance.com", ws="wss://fstream.binancefuture.com")


def resolve_urls(rest_url: str | None, stream_url: str | None, *, default: BinanceUrls = LIVE) -> BinanceUrls:
    """Settings override the defaults piecewise ([exchange] rest_url / stream_url)."""
    return BinanceUrls(rest=rest_url or default.rest, ws=stream_url or default.ws)
