"""Casino's exceptions, named by what the bot does about them.

::

    CasinoError
    ├── ConfigError            bad settings: stop before anything starts (exit code 2)
    ├── DataError              bad recorded/streamed data: name the file/line, skip or stop
    ├── StateError             unreadable or incompatible state files
    └── ExchangeError          anything the venue said or failed to say
        ├── Retryable          transient (network, timeout on a read, 5xx, -1008): back off, retry
        │   ├── RateLimited    429: this pool sends nothing until ``retry_after_s`` passes
        │   ├── ClockSkew      -1021: resync the server-time offset, retry once
        │   └── CircuitOpen    the breaker for this endpoint group is open: fail fast, retry later
        ├── Banned             418: the whole client is banned until ``until_ms``
        ├── UnknownOutcome     a write may or may not have happened (timeout after send, 503
        │                      "Unknown error…", -1006, -1007): reconcile by client id, never resend
        ├── Rejected           the exchange said no, definitively (``code``, ``msg``): do not retry
        │   └── FilterViolation  Casino's own pre-check of the symbol filters said no
        └── AuthError          bad key, signature or permissions (-2015, -1022, 401): fatal config

The mapping from Binance's HTTP status + code to these classes lives in one table in
``exchanges/binance/errors.py``.
"""

from __future__ import annotations


class CasinoError(Exception):
    """Root of every error Casino raises on purpose."""


class ConfigError(CasinoError):
    """Settings are invalid; the message names the key, the bad value and what is allowed."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(CasinoError):
    """Recorded or streamed market data is unusable (file and line in the message)."""


class StateError(CasinoError):
    """A state snapshot or journal cannot be used (corrupt, or from a newer schema)."""


class ExchangeError(CasinoError):
    """Something went wrong talking to an exchange."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint


class Retryable(ExchangeError):
    """Transient failure; the request did not take effect (or was a read). Back off and retry."""


class RateLimited(Retryable):
    """HTTP 429: a rate-limit pool is exhausted; wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: float, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.retry_after_s = retry_after_s


class ClockSkew(Retryable):
    """-1021: the request's timestamp fell outside recvWindow; resync time and retry once."""


class CircuitOpen(Retryable):
    """The circuit breaker for an endpoint group is open; the call was not attempted."""

    def __init__(self, message: str, *, group: str, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.group = group


class Banned(ExchangeError):
    """HTTP 418: the IP is banned until ``until_ms`` (epoch milliseconds)."""

    def __init__(self, message: str, *, until_ms: int, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.until_ms = until_ms


class UnknownOutcome(ExchangeError):
    """A write may have been applied. Resolve by querying ``client_id``; never resend blindly."""

    def __init__(self, message: str, *, client_id: str | None = None, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.client_id = client_id


class Rejected(ExchangeError):
    """The exchange refused the request for good; ``code`` and ``msg`` are Binance's."""

    def __init__(self, code: int, msg: str, *, endpoint: str = "", http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}", endpoint=endpoint)
        self.code = code
        self.msg = msg
        self.http_status = http_status


class FilterViolation(Rejected):
    """Casino's own check of a symbol filter failed before the order left."""

    def __init__(self, code: int, msg: str, *, filter_name: str) -> None:
        super().__init__(code, msg, endpoint="local-filter-check")
        self.filter_name = filter_name


class AuthError(ExchangeError):
    """Key, signature or permission problem; retrying cannot help."""

    def __init__(self, message: str, *, code: int | None = None, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.code = code
