"""Circuit breakers per endpoint group (orders, account, market data).

CLOSED → OPEN after ``failure_threshold`` consecutive failures; OPEN → HALF_OPEN after
``open_s``; HALF_OPEN admits ``half_open_probes`` calls and closes after
``success_threshold`` successes, reopening on any failure (Casino-V3's numbers: 5 / 60 s / 3 / 3).

An open breaker fails fast for entries and market data, but protective calls (stop placement,
flatten, cancels) are always attempted: an unprotected position is worse than a failed call.
Only transport-level failures count (network, timeouts, 5xx, unknown outcomes); a business
rejection means the venue is healthy.
"""

from __future__ import annotations

import logging
from enum import Enum

from config.settings import BreakerSettings
from core.errors import CircuitOpen
from core.metrics import BREAKER_STATE, BREAKER_TRANSITIONS
from core.ports import Clock

log = logging.getLogger(__name__)


class BreakerState(str, Enum):
    CLOSED = "CLOSED"
    HALF_OPEN = "HALF_OPEN"
    OPEN = "OPEN"


class BreakerEvent(str, Enum):
    FAILURE_LIMIT = "FAILURE_LIMIT"  # consecutive failures reached the threshold
    COOLED_DOWN = "COOLED_DOWN"  # open_s elapsed
    PROBE_FAILED = "PROBE_FAILED"
    PROBES_PASSED = "PROBES_PASSED"


# The allowed transitions; anything else is a bug and raises.
TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (BreakerState.CLOSED, BreakerEvent.FAILURE_LIMIT): BreakerState.OPEN,
    (BreakerState.OPEN, BreakerEvent.COOLED_DOWN): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.PROBE_FAILED): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.PROBES_PASSED): BreakerState.CLOSED,
}

_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """One group's breaker. Call ``admit`` before a request, then ``record_*`` after it."""

    def __init__(self, group: str, settings: BreakerSettings, clock: Clock) -> None:
        self.group = group
        self._s = settings
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probe_successes = 0
        BREAKER_STATE.labels(group=group).set(0)

    @property
    def state(self) -> BreakerState:
        """Current state (moves OPEN → HALF_OPEN lazily once ``open_s`` passed)."""
        self._cool_down()
        return self._state

    def _move(self, event: BreakerEvent) -> None:
        new = TRANSITIONS[(self._state, event)]
        log.warning("breaker %s: %s → %s (%s)", self.group, self._state.value, new.value, event.value)
        self._state = new
        BREAKER_STATE.labels(group=self.group).set(_GAUGE[new])
        BREAKER_TRANSITIONS.labels(group=self.group, to=new.value).inc()
        if new is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        if new is BreakerState.HALF_OPEN:
            self._probes_admitted = 0
            self._probe_successes = 0
        if new is BreakerState.CLOSED:
            self._failures = 0

    def _cool_down(self) -> None:
        if self._state is BreakerState.OPEN and self._clock.monotonic() - self._opened_at >= self._s.open_s:
            self._move(BreakerEvent.COOLED_DOWN)

    def admit(self, *, protective: bool = False) -> bool:
        """Whether this call counts toward the breaker (True) or bypasses it (False).

        Raises ``CircuitOpen`` for a non-protective call the breaker refuses.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes_admitted < self._s.half_open_probes:
            self._probes_admitted += 1
            return True
        if protective:
            return False  # attempted anyway; its result does not move the breaker
        raise CircuitOpen(f"circuit breaker for {self.group} is {state.value}", group=self.group)

    def record_success(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self._s.success_threshold:
                self._move(BreakerEvent.PROBES_PASSED)
        elif self._state is BreakerState.CLOSED:
            self._failures = 0

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._move(BreakerEvent.PROBE_FAILED)
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._s.failure_threshold:
                self._move(BreakerEvent.FAILURE_LIMIT)


class BreakerBoard:
    """The breakers of all endpoint groups; ``states()`` is what the risk gate reads."""

    GROUPS = ("orders", "account", "market_data")

    def __init__(self, settings: BreakerSettings, clock: Clock) -> None:
        self._breakers = {g: CircuitBreaker(g, settings, clock) for g in self.GROUPS}

    def __getitem__(self, group: str) -> CircuitBreaker:
        return self._breakers[group]

    def states(self) -> dict[str, BreakerState]:
        return {g: b.state for g, b in self._breakers.items()}
