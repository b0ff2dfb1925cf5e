"""Child process for tests/test_state_crash.py: recovers, then writes state as fast as it can.

Run as ``python tests/state_crash_child.py DIR [nosync]``. Each loop iteration journals an
order intent and its outcome (nothing is sent), a numbered fill, and a large bracket transition
(so a kill can land in the middle of a multi-page write); every few fills it saves a snapshot
whose state says how many fills it reflects. ``nosync`` opens the journal with fsync off and
skips the (always fsynced) intents, so the process spends its time inside write() and a kill
tears lines far more often. The parent kills it with SIGKILL and checks that snapshot +
journal still add up to an unbroken sequence of fills.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import LiveClock  # noqa: E402
from core.types import Fill, OrderRequest, OrderType, Side  # noqa: E402
from state.journal import IntentAction, OrderIntent, OutcomeStatus  # noqa: E402
from state.recovery import recover_local  # noqa: E402
from state.snapshot import FileSnapshotStore, SnapshotWriter  # noqa: E402


def main(directory: Path, fsync: bool) -> None:
    clock = LiveClock()
    store = FileSnapshotStore(directory / "snapshots", generations=3, clock=clock)
    recovered = recover_local(store, directory / "journal.jsonl", clock, fsync=fsync)
    journal = recovered.journal
    state = {"fills": int(recovered.state.get("fills", 0)) + len(recovered.fills), "pad": "p" * 20_000}
    for ticket in recovered.unknown_intents:  # what phase 2 resolves against the exchange
        journal.record_outcome(ticket, OutcomeStatus.NOT_SENT, message="resolved after restart")
    writer = SnapshotWriter(store, lambda: dict(state), clock, interval_s=3600.0, journal=journal)
    print("ready", flush=True)
    while True:
        n = state["fills"] + 1
        cid = f"ccrash0BTCUSDT.{n:x}E0"
        if fsync:  # intents are always fsynced, so the nosync rounds write fills and transitions only
            request = OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.001"), cid)
            ticket = journal.record_intent(OrderIntent(IntentAction.PLACE_ORDER, "BTCUSDT", cid, request))
            journal.record_outcome(ticket, OutcomeStatus.ACCEPTED, exchange_id=n)
        journal.record_fill(Fill("BTCUSDT", n, n, cid, Side.BUY, Decimal("100.5"), Decimal("0.001"),
                                 Decimal("0.0000502"), "USDT", Decimal(0), False, n))
        state["fills"] = n
        # large lines take many pages to write, so a kill can land inside write()
        if fsync and n % 3 == 0:
            journal.record_transition({"bracket_id": "b", "bracket": {"n": n, "pad": "x" * 200_000}})
        elif not fsync:
            journal.record_transition({"bracket_id": "b", "bracket": {"n": n, "pad": "x" * 1_000_000}})
        if n % (5 if fsync else 25) == 0:
            writer.save_now()


if __name__ == "__main__":
    main(Path(sys.argv[1]), fsync=sys.argv[2:] != ["nosync"])
