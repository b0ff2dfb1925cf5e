"""How an operator steers a running session: Unix signals and the session timer.

- SIGTERM / SIGINT: graceful stop (no new entries, in-flight orders settle, then the exit
  policy). A second one during shutdown skips the waiting and flattens immediately.
- SIGUSR2: toggle drain (no new entries; open brackets run to their exits) and write status.
- SIGUSR1: write status.
- ``--duration`` elapsing behaves like SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from core.ports import Clock

log = logging.getLogger(__name__)


class SessionControl:
    """Flags the engine polls and events it awaits; signal handlers only flip them."""

    def __init__(self, *, on_status_request: Callable[[], None] | None = None) -> None:
        self.stop_requested = asyncio.Event()
        self.urgent = asyncio.Event()  # second stop: flatten now, skip waiting
        self.stop_reason = ""
        self.urgent_reason = ""  # what asked a second time (SIGTERM, SIGINT); empty until then
        self.draining = False
        self._on_status_request = on_status_request
        self._installed: list[int] = []

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: lambda: self.request_stop("SIGTERM"),
            signal.SIGINT: lambda: self.request_stop("SIGINT"),
            signal.SIGUSR2: self.toggle_drain,
            signal.SIGUSR1: self.request_status,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
            self._installed.append(sig)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def request_stop(self, reason: str) -> None:
        if self.stop_requested.is_set():
            if not self.urgent.is_set():
                log.warning("second stop request (%s): flattening now without waiting", reason)
                self.urgent_reason = reason
                self.urgent.set()
            return
        log.warning("stop requested (%s): no new entries; settling, then the exit policy", reason)
        self.stop_reason = reason
        self.stop_requested.set()

    def toggle_drain(self) -> None:
        self.draining = not self.draining
        log.warning("drain %s: %s", "ON" if self.draining else "OFF",
                    "no new entries, open brackets run to their exits" if self.draining else "entries allowed again")
        self.request_status()

    def request_status(self) -> None:
        if self._on_status_request is not None:
            try:
                self._on_status_request()
            except Exception:  # a status dump must never take the session down
                log.exception("writing status failed")

    @property
    def entries_allowed(self) -> bool:
        return not self.draining and not self.stop_requested.is_set()

    async def run_timer(self, clock: Clock, duration_s: float) -> None:
        """Sleep for the session's duration on ``clock`` (simulated or real), then stop."""
        await clock.sleep(duration_s)
        self.request_stop("duration")
