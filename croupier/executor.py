"""OrderExecutor: every order Casino sends, journaled first, its outcome classified and resolved.

The rules (issue 7, LESSONS.md #12):

* the intent is journaled and fsynced before the request leaves (``Journal.submit``);
* ``Rejected`` is final — except a duplicate client id (-4116), which means an earlier attempt
  of the *same* deterministic id already reached the exchange: the existing order is looked up
  and returned, never duplicated;
* ``UnknownOutcome`` (timeout after send, 503 "Unknown error", -1006/-1007) is resolved by
  querying the client id (``query_order`` / ``query_algo_order``) *before* any resubmission:
  found → that order is the result; "does not exist" (-2013) → the request never took effect
  and may be sent again under the same id; the query itself failing → the intent stays pending
  (``UnknownOutcome`` is raised) for reconciliation to settle;
* only ``Retryable`` errors (network, 5xx, -1008, 429 after its wait, an open breaker) are
  retried, with a short backoff, up to ``attempts`` times.

Cancels follow the same journal-first rule; "unknown order" (-2011/-2013) on a cancel means the
order is already gone, which the caller learns as ``False``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.errors import RateLimited, Rejected, Retryable, UnknownOutcome
from core.ports import Clock, ExchangePort
from core.types import AlgoOrder, AlgoOrderRequest, Order, OrderRequest
from state.journal import IntentAction, Journal, OrderIntent, OutcomeStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

DUPLICATE_CLIENT_ID = -4116
GONE_CODES = frozenset({-2011, -2013})  # "Unknown order sent." / "Order does not exist."
MAX_RATE_LIMIT_WAIT_S = 5.0  # longer waits are not worth holding a protective order for


class OrderExecutor:
    """Places and cancels regular and algo orders with the write-ahead and idempotency rules."""

    def __init__(
        self, exchange: ExchangePort, journal: Journal, clock: Clock, *, attempts: int = 3,
        backoff_s: float = 0.05,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.exchange = exchange
        self.journal = journal
        self.clock = clock
        self.attempts = attempts
        self.backoff_s = backoff_s

    # -- placing -------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest, *, bracket_id: str = "", leg: str = "") -> Order:
        """Place a regular order; returns the exchange's record of it (existing one on -4116)."""
        intent = OrderIntent(IntentAction.PLACE_ORDER, request.symbol, request.client_order_id, request,
                             bracket_id, leg, created_ms=self.clock.now_ms())

        async def lookup() -> Order:
            return await self.exchange.query_order(request.symbol, client_order_id=request.client_order_id)

        return await self._place(intent, lambda: self.exchange.place_order(request), lookup)

    async def place_algo(self, request: AlgoOrderRequest, *, bracket_id: str = "", leg: str = "") -> AlgoOrder:
        """Place a conditional order on the Algo API; returns its record (existing one on -4116)."""
        intent = OrderIntent(IntentAction.PLACE_ALGO, request.symbol, request.client_algo_id, request,
                             bracket_id, leg, created_ms=self.clock.now_ms())

        async def lookup() -> AlgoOrder:
            return await self.exchange.query_algo_order(request.symbol, client_algo_id=request.client_algo_id)

        return await self._place(intent, lambda: self.exchange.place_algo_order(request), lookup)

    async def _place(self, intent: OrderIntent, send: Callable[[], Awaitable[T]],
                     lookup: Callable[[], Awaitable[T]]) -> T:
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                return await self.journal.submit(intent, lambda _ticket: send())
            except Rejected as exc:
                if exc.code != DUPLICATE_CLIENT_ID:
                    raise
                log.warning("%s: duplicate client id — the order exists already; adopting it", intent.client_id)
                found = await self._resolve(intent.client_id, lookup)
                if found is None:
                    raise
                return found
            except UnknownOutcome as exc:
                log.warning("%s: outcome unknown (%s); querying by client id", intent.client_id, exc)
                found = await self._resolve(intent.client_id, lookup)
                if found is not None:
                    return found
                last = exc  # not there: it never took effect, the same id may go again
            except Retryable as exc:
                last = exc
                await self._backoff(exc, attempt)
                continue
        assert last is not None
        raise last

    async def _resolve(self, client_id: str, lookup: Callable[[], Awaitable[T]]) -> T | None:
        """The order under the intent's client id, or None when the exchange has no such order.

        Raises ``UnknownOutcome`` when even the query cannot be answered: the intent stays
        pending in the journal for reconciliation.
        """
        for attempt in range(self.attempts):
            try:
                found = await lookup()
            except Rejected as exc:
                if exc.code in GONE_CODES:
                    self._settle(client_id, OutcomeStatus.NOT_SENT, message="not found by client id")
                    return None
                raise
            except Retryable as exc:
                await self._backoff(exc, attempt)
                continue
            exchange_id = getattr(found, "order_id", None) or getattr(found, "algo_id", None)
            self._settle(client_id, OutcomeStatus.ACCEPTED, exchange_id=exchange_id,
                         message="found by client id")
            return found
        raise UnknownOutcome(f"{client_id}: outcome still unknown after {self.attempts} queries",
                             client_id=client_id)

    def _settle(self, client_id: str, status: OutcomeStatus, *, exchange_id: int | None = None,
                message: str = "") -> None:
        """Give every pending intent for ``client_id`` its final outcome."""
        for ticket in self.journal.pending():
            if ticket.intent.client_id == client_id:
                self.journal.record_outcome(ticket, status, exchange_id=exchange_id, message=message)

    async def _backoff(self, exc: Exception, attempt: int) -> None:
        # Real-time backoff (not the session clock): the wait is about the transport, and a
        # manual simulation clock would otherwise never let a retry happen.
        delay = self.backoff_s * (2**attempt)
        if isinstance(exc, RateLimited):
            delay = max(delay, min(exc.retry_after_s, MAX_RATE_LIMIT_WAIT_S))
        await asyncio.sleep(delay)

    # -- resolving journaled intents ------------------------------------------------------

    async def resolve_pending(self, client_id: str, *, algo: bool, symbol: str) -> Order | AlgoOrder | None:
        """Settle a journaled intent of unknown outcome (recovery): the order, or None if absent."""
        async def lookup() -> Order | AlgoOrder:
            if algo:
                return await self.exchange.query_algo_order(symbol, client_algo_id=client_id)
            return await self.exchange.query_order(symbol, client_order_id=client_id)

        return await self._resolve(client_id, lookup)

    # -- cancelling ------------------------------------------------------------------------

    async def cancel_order(self, symbol: str, client_id: str, *, bracket_id: str = "", leg: str = "") -> bool:
        """Cancel a regular order; False when it was already gone (filled, cancelled, unknown)."""
        intent = OrderIntent(IntentAction.CANCEL_ORDER, symbol, client_id, None, bracket_id, leg,
                             created_ms=self.clock.now_ms())
        return await self._cancel(intent, lambda: self.exchange.cancel_order(symbol, client_order_id=client_id))

    async def cancel_algo(self, symbol: str, client_id: str, *, bracket_id: str = "", leg: str = "") -> bool:
        """Cancel an algo order; False when it was already gone (triggered, finished, unknown)."""
        intent = OrderIntent(IntentAction.CANCEL_ALGO, symbol, client_id, None, bracket_id, leg,
                             created_ms=self.clock.now_ms())
        return await self._cancel(intent,
                                  lambda: self.exchange.cancel_algo_order(symbol, client_algo_id=client_id))

    async def _cancel(self, intent: OrderIntent, send: Callable[[], Awaitable[object]]) -> bool:
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                await self.journal.submit(intent, lambda _ticket: send())
                return True
            except Rejected as exc:
                if exc.code in GONE_CODES:
                    return False
                raise
            except UnknownOutcome as exc:
                # A repeated cancel is harmless: it either cancels or answers "unknown order".
                self._settle(intent.client_id, OutcomeStatus.NOT_SENT, message="cancel retried")
                last = exc
            except Retryable as exc:
                last = exc
                await self._backoff(exc, attempt)
        assert last is not None
        raise last

