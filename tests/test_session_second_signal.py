"""A second SIGTERM during shutdown skips the settle wait and flattens at once (real processes).

The session trades LIMIT entries against a separate `python main.py sim` process. When a
LIMIT entry is resting (ENTRY_SENT) the simulator is frozen with SIGSTOP, so that entry can
neither fill nor be cancelled by the market: the graceful stop that follows the first SIGTERM
has to wait for it, up to ``shutdown_wait_s`` (120 s here). The second SIGTERM must end that
wait: the entry is cancelled, every position is swept, the report says the exit was urgent,
and the process exits 0 long before the bounded wait would have ended.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from session_helpers import free_port, report, start_session, status, wait_ready, write_config
from test_session_e2e import _account, _sim_process

pytestmark = pytest.mark.slow

SHUTDOWN_WAIT_S = 120.0
# LIMIT entries that rest until the market comes back to them; stops and targets wide enough
# that a filled entry stays a position while the test looks for a resting one. Post-only (GTX):
# an entry at the decided close reaches the exchange while its last price may still be that
# close, where a GTC entry would take at once — how often depends only on how fast the entry
# leaves; a post-only one is refused there (the next decision tries again) and otherwise rests.
LIMIT_ENTRIES = f"""
[croupier]
entry_type = "LIMIT"
entry_time_in_force = "GTX"
entry_timeout_s = 3600.0
"""


def _config(tmp: Path) -> Path:
    cfg = write_config(tmp, LIMIT_ENTRIES)
    text = cfg.read_text().replace("shutdown_wait_s = 5.0", f"shutdown_wait_s = {SHUTDOWN_WAIT_S}")
    for key, value in (("tp_min_fraction", "0.01"), ("tp_max_fraction", "0.015"),
                       ("sl_min_fraction", "0.01"), ("sl_max_fraction", "0.015")):
        text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} =") else line for line in text.splitlines())
    cfg.write_text(text + "\n")
    return cfg


def _resting_entry(doc: dict[str, Any]) -> str | None:
    for b in doc["croupier"]["brackets"]:
        if b["state"] == "ENTRY_SENT":
            return str(b["id"])
    return None


def _freeze_on_a_resting_entry(sim_pid: int, port: int, deadline: float) -> str:
    """SIGSTOP the simulator while a LIMIT entry rests; returns that bracket's id."""
    while time.monotonic() < deadline:
        if _resting_entry(status(port)) is None:
            time.sleep(0.02)
            continue
        os.kill(sim_pid, signal.SIGSTOP)
        time.sleep(0.5)  # events already on the wire reach the engine
        bracket = _resting_entry(status(port))
        if bracket is not None:
            return bracket
        os.kill(sim_pid, signal.SIGCONT)  # it filled just before the freeze: wait for the next one
    raise AssertionError("no LIMIT entry was ever seen resting")


def test_second_sigterm_skips_the_settle_wait_and_flattens(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    # speed 60: a LIMIT entry rests ~1 s real per bar, long enough to be caught on a loaded machine
    sim, info = _sim_process(tmp_path, cfg, speed=60)
    frozen = False
    session = None
    try:
        port = free_port()
        session = start_session(
            tmp_path, "run", "--config", str(cfg), "--exchange-url", info["REST_URL"], "--stream-url",
            info["WS_URL"], "--duration", "30m", "--on-exit", "keep", "--metrics-addr", f"127.0.0.1:{port}",
            extra_env={"CASINO_API_KEY": info["API_KEY"], "CASINO_API_SECRET": info["API_SECRET"]},
        )
        wait_ready(port, session)
        bracket = _freeze_on_a_resting_entry(sim.pid, port, time.monotonic() + 240)
        frozen = True
        session.send_signal(signal.SIGTERM)
        # the graceful stop waits for the resting entry: still running, stopping, entry pending
        time.sleep(3.0)
        assert session.poll() is None, "the graceful stop did not wait for the entry in flight"
        waiting = status(port)
        assert waiting["stopping"] and _resting_entry(waiting) == bracket
        second = time.monotonic()
        session.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        os.kill(sim.pid, signal.SIGCONT)  # the exchange answers again: the cancel and sweep go through
        frozen = False
        out, err = session.communicate(timeout=90)
        ended_after = time.monotonic() - second
        assert session.returncode == 0, err[-3000:]
        account = asyncio.run(_account(info))
    finally:
        if frozen:
            os.kill(sim.pid, signal.SIGCONT)
        if session is not None and session.poll() is None:  # a failed assertion must not leave it running
            session.kill()
            session.communicate(timeout=30)
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    # well before the 120 s the graceful path would have waited (first signal + 3 s + this)
    assert ended_after < SHUTDOWN_WAIT_S / 4, ended_after
    doc = report(tmp_path)
    assert doc["exit_reason"] == "SIGTERM" and not doc["crashed"]
    shutdown = doc["shutdown"]
    # "keep" was configured, the second signal flattened instead
    assert shutdown["urgent"] is True and shutdown["policy"] == "flatten" and shutdown["second_request"] == "SIGTERM"
    assert 2.5 <= shutdown["settle_wait_s"] < SHUTDOWN_WAIT_S / 4
    assert doc["open_positions_at_exit"] == []
    assert any("second stop request (SIGTERM)" in n for n in doc["notes"])
    # nothing left on the exchange: no position, no order, no conditional order
    assert all(Decimal(p["positionAmt"]) == 0 for p in account["positions"]), account["positions"]
    assert account["orders"] == [] and account["algos"] == []
    # what the sweep closed is booked at the exchange's prices: the report agrees with its books
    by_type: dict[str, Decimal] = {}
    for row in account["income"]:
        by_type[row["incomeType"]] = by_type.get(row["incomeType"], Decimal(0)) + Decimal(row["income"])
    assert Decimal(doc["pnl"]["gross"]) == by_type.get("REALIZED_PNL", Decimal(0))
    assert Decimal(doc["pnl"]["fees"]) == -by_type.get("COMMISSION", Decimal(0))
    assert sum(Decimal(t["fees"]) for t in doc["trades"]) == Decimal(doc["pnl"]["fees"])
