"""Fault injection for the simulated exchange, from Python or from the admin endpoint.

Every fault is a one-shot (or N-shot) instruction consumed by the server:

=====================  ==========================================================
``drop_websockets()``  close every open websocket connection now
``lose_response``      apply the request, then answer as if the outcome were lost:
                       ``"timeout"`` (hold the answer ``delay_s``, then drop the
                       connection), ``"503"`` (HTTP 503 "Unknown error, please check
                       your request or try again later."), ``"-1007"`` (HTTP 408
                       code -1007)
``delay_response``     apply the request and answer after ``delay_s``
``fail``               do NOT apply the request; answer ``status`` (5xx) or -1008
``force_429 / 418``    the next request(s) get 429, or a ban for ``seconds``
``clock_skew_ms``      shift the server's clock seen by clients (``/time``, -1021)
``expire_listen_key``  the current listenKey dies now (listenKeyExpired is pushed)
``reject_next_algo``   the next N algo orders are accepted then REJECTED (ALGO_UPDATE)
``split_fills_into``   every fill is split into N partial fills
=====================  ==========================================================

``endpoint`` is a Binance path such as ``/fapi/v1/order`` (``"*"`` = any); ``method`` limits
it to one HTTP verb. The admin endpoint (``POST /sim/admin/fault`` with a JSON body
``{"fault": NAME, ...same keyword arguments...}``) exists only when the server is built with
``admin=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN_503_MSG = "Unknown error, please check your request or try again later."


@dataclass
class PathFault:
    kind: str  # lose | delay | fail
    endpoint: str
    method: str | None
    remaining: int
    mode: str = ""  # lose: timeout | 503 | -1007 ; fail: 500/502/503/504 | -1008
    delay_s: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and (self.endpoint in ("*", path)) and (self.method in (None, method))


@dataclass
class Faults:
    """The pending faults; the server consumes them as requests arrive."""

    path_faults: list[PathFault] = field(default_factory=list)
    force_429: int = 0
    clock_skew_ms: int = 0
    reject_algos: int = 0
    drop_ws_requested: int = 0
    expire_key_requested: int = 0
    ban_seconds: float = 0.0
    split_fills: int = 1

    # -- API ---------------------------------------------------------------------
    def lose_response(self, endpoint: str, *, mode: str = "503", method: str | None = None, count: int = 1,
                      delay_s: float = 1.0) -> None:
        if mode not in ("timeout", "503", "-1007"):
            raise ValueError(f"lose_response mode must be timeout, 503 or -1007, not {mode!r}")
        self.path_faults.append(PathFault("lose", endpoint, method, count, mode, delay_s))

    def delay_response(self, endpoint: str, delay_s: float, *, method: str | None = None, count: int = 1) -> None:
        self.path_faults.append(PathFault("delay", endpoint, method, count, "", delay_s))

    def fail(self, endpoint: str, *, status: str = "503", method: str | None = None, count: int = 1) -> None:
        if status not in ("500", "502", "503", "504", "-1008"):
            raise ValueError(f"fail status must be 500/502/503/504 or -1008, not {status!r}")
        self.path_faults.append(PathFault("fail", endpoint, method, count, status))

    def force_rate_limit(self, count: int = 1) -> None:
        self.force_429 += count

    def force_ban(self, seconds: float = 120.0) -> None:
        self.ban_seconds = seconds

    def skew_clock(self, ms: int) -> None:
        self.clock_skew_ms = ms

    def reject_next_algo(self, count: int = 1) -> None:
        self.reject_algos += count

    def split_fills_into(self, parts: int) -> None:
        if parts < 1:
            raise ValueError("parts must be ≥ 1")
        self.split_fills = parts

    def drop_websockets(self) -> None:
        self.drop_ws_requested += 1

    def expire_listen_key(self) -> None:
        self.expire_key_requested += 1

    # -- consumption ---------------------------------------------------------------
    def take(self, kind: str, method: str, path: str, *, reduce_only: bool = False) -> PathFault | None:
        """Consume the first matching fault; -1008 spares reduce-only/close-position orders (as Binance)."""
        for f in self.path_faults:
            if f.kind == kind and f.matches(method, path) and not (reduce_only and f.mode == "-1008"):
                f.remaining -= 1
                if f.remaining <= 0:
                    self.path_faults.remove(f)
                return f
        return None

    def apply_admin(self, payload: dict[str, object]) -> None:
        """Dispatch an admin request ``{"fault": name, **kwargs}``; unknown names raise ValueError."""
        name = str(payload.get("fault", ""))
        kwargs = {k: v for k, v in payload.items() if k != "fault"}
        table = {
            "lose_response": self.lose_response, "delay_response": self.delay_response, "fail": self.fail,
            "force_429": self.force_rate_limit, "force_418": self.force_ban, "clock_skew": self.skew_clock,
            "reject_next_algo": self.reject_next_algo, "drop_websockets": self.drop_websockets,
            "expire_listen_key": self.expire_listen_key, "split_fills": self.split_fills_into,
        }
        if name not in table:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(table))}")
        table[name](**kwargs)  # type: ignore[operator]
