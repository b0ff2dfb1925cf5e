"""A minimal Binance USDⓈ-M client written only from ../shared/BINANCE.md, for the simulator tests.

It signs like §5 (HMAC-SHA256 hex over the url-encoded parameters, ``signature`` last; or
Ed25519 base64), sends the key in ``X-MBX-APIKEY``, and knows nothing of the simulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL


class BinanceTestClient:
    def __init__(self, rest_url: str, api_key: str, secret: str | None = None, ed25519_private: Any = None) -> None:
        self.rest_url = rest_url
        self.api_key = api_key
        self.secret = secret
        self.ed25519_private = ed25519_private
        self.session = aiohttp.ClientSession()
        self.offset_ms = 0
        self.last_headers: dict[str, str] = {}
        self.last_status = 0

    async def close(self) -> None:
        await self.session.close()

    async def sync_time(self) -> None:
        _, body = await self.request("GET", "/fapi/v1/time")
        self.offset_ms = body["serverTime"] - time.time_ns() // 1_000_000

    def sign(self, payload: str) -> str:
        if self.ed25519_private is not None:
            return quote(base64.b64encode(self.ed25519_private.sign(payload.encode())).decode(), safe="")
        assert self.secret is not None
        return hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                      signed: bool = False, key: bool = False, timestamp_ms: int | None = None,
                      in_body: bool = False) -> tuple[int, Any]:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if signed:
            params["timestamp"] = timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000 + self.offset_ms
        text = urlencode(params)
        if signed:
            text = f"{text}&signature={self.sign(text)}" if text else f"signature={self.sign(text)}"
        headers = {"X-MBX-APIKEY": self.api_key} if (signed or key) else {}
        url = self.rest_url + path
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            resp_cm = self.session.request(method, url, data=text, headers=headers)
        else:
            # encoded=True: send the query exactly as signed (yarl would otherwise requote it).
            target = URL(f"{url}?{text}" if text else url, encoded=True)
            resp_cm = self.session.request(method, target, headers=headers)
        async with resp_cm as resp:
            self.last_headers = {k.lower(): v for k, v in resp.headers.items()}
            self.last_status = resp.status
            raw = await resp.text()
            return resp.status, json.loads(raw) if raw else None
