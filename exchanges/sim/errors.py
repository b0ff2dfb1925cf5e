"""Binance's error answers as the simulator gives them: code, exact message, HTTP status.

Messages are the ones in ``../shared/fixtures/binance/errors/error_bodies.json`` (real logs
where available, else the USD-M error-code page). ``SimError`` is raised by the pure engine;
the server renders it as ``{"code": …, "msg": …}`` with ``http_status``, and ``local.py``
turns it into the kernel's ``Rejected``.
"""

from __future__ import annotations

from decimal import Decimal


class SimError(Exception):
    """A request the simulated exchange refuses, exactly as Binance would."""

    def __init__(self, code: int, msg: str, http_status: int = 400, *, retry_after_s: int | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.retry_after_s = retry_after_s  # sent as the Retry-After header (429/418)

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


MESSAGES: dict[int, str] = {
    -1000: "An unknown error occurred while processing the request.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    -1008: "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. Please try again.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1100: "Illegal characters found in a parameter.",
    -1102: "Mandatory parameter '%s' was not sent, was empty/null, or malformed.",
    -1111: "Precision is over the maximum defined for this asset.",
    -1116: "Invalid orderType.",
    -1117: "Invalid side.",
    -1121: "Invalid symbol.",
    -1125: "This listenKey does not exist.",
    -1130: "Data sent for parameter '%s' is not valid.",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2015: "Invalid API-key, IP, or permissions for action.",
    -2019: "Margin is insufficient.",
    -2021: "Order would immediately trigger.",
    -2022: "ReduceOnly Order is rejected.",
    -2027: "Exceeded the maximum allowable position at current leverage.",
    -4003: "Quantity less than zero.",
    -4014: "Price not increased by tick size.",
    -4015: "Client order id is not valid.",
    -4016: "Limit price can't be higher than %s.",
    -4023: "Quantity not increased by step size.",
    -4024: "Limit price can't be lower than %s.",
    -4028: "Leverage %s is not valid",
    -4046: "No need to change margin type.",
    -4059: "No need to change position side.",
    -4061: "Order's position side does not match user's setting.",
    -4067: "Position side cannot be changed if there exists open orders.",
    -4068: "Position side cannot be changed if there exists position.",
    -4116: "clientOrderId is duplicated",
    -4120: "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit",
    -4164: "Order's notional must be no smaller than %s (unless you choose reduce only).",
    -5021: "Due to the order could not be filled immediately, the FOK order has been rejected.",
    -5022: (
        "Due to the order could not be executed as maker, the Post Only order will be rejected. "
        "The order will not be recorded in the order history"
    ),
}


def err(code: int, *args: object, http_status: int = 400) -> SimError:
    """Build the SimError for ``code`` with Binance's message (``%s`` filled from args)."""
    text = MESSAGES[code]
    if args:
        text = text % tuple(_fmt(a) for a in args)
    return SimError(code, text, http_status)


def _fmt(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)
