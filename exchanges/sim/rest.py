"""Shared pieces of the simulator's REST handlers: the context they work on and parameter parsing.

Handlers live in ``rest_market.py``, ``rest_orders.py`` and ``rest_account.py`` (one function per
endpoint: the request's parameters as sent and the ``SimContext`` in, the JSON body out;
refusals raise ``SimError`` with Binance's code). ``routes.py`` maps paths to them with their
security type, request weight and order count. Transport (limits, signing, faults, headers)
is ``server.py``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from exchanges.sim.errors import err
from exchanges.sim.faults import Faults
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
    # (REQUEST_WEIGHT per minute, ORDERS per minute, ORDERS per 10 s) that exchangeInfo
    # advertises; the server sets them from the limits its limiter enforces.
    rate_limits: tuple[int, int, int] = (2400, 1200, 300)

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


def symbol_param(ctx: SimContext, p: Params) -> str:
    s = req(p, "symbol")
    ctx.spec(s)
    return s
