"""Benchmarks of the crash-safe state path and the croupier's bookkeeping.

    python bench/state_bench.py           # full
    python bench/state_bench.py --quick   # under a minute

Prints one JSON object per figure per line (medians of ``runs``):

* journal: fsynced order intents per second, and how long one takes (what every order waits for)
* snapshot: time to save a realistic state document (50 brackets, a tracker with 5 symbols)
* recovery: time to load the newest snapshot and replay a journal of N entries
* tracker: fills applied per second (ledger postings included)
* bracket: transitions per second through the pure state machine
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import LiveClock  # noqa: E402
from core.types import Fill, OrderRequest, OrderType, Side  # noqa: E402
from croupier.bracket import Bracket, BracketEvent, EventKind, transition  # noqa: E402
from croupier.bracket_book import BracketBook  # noqa: E402
from croupier.ids import Leg  # noqa: E402
from croupier.tracker import PositionTracker  # noqa: E402
from state.journal import IntentAction, Journal, OrderIntent  # noqa: E402
from state.recovery import recover_local  # noqa: E402
from state.snapshot import FileSnapshotStore, SnapshotWriter  # noqa: E402

D = Decimal
CLOCK = LiveClock()


def emit(bench: str, metric: str, values: list[float], unit: str) -> None:
    print(orjson.dumps({"bench": bench, "metric": metric, "value": round(statistics.median(values), 3),
                        "unit": unit, "runs": len(values)}).decode(), flush=True)


def _intent(n: int) -> OrderIntent:
    cid = f"cbench0BTCUSDT.{n:x}E0"
    return OrderIntent(IntentAction.PLACE_ORDER, "BTCUSDT", cid,
                       OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.001"), cid))


def _fill(n: int, side: Side, symbol: str = "BTCUSDT") -> Fill:
    price = D(30000) + D(n % 97)
    return Fill(symbol, n, n, "c", side, price, D("0.003"), D("0.0450015"), "USDT", D(0), False, n)


def _brackets(count: int) -> BracketBook:
    book = BracketBook()
    for number in range(count):
        b = book.open(Bracket("kbench", "BTCUSDT", Side.BUY, number, D("0.010"), D("31000"), D("29000")))
        book.apply(b.id, BracketEvent(EventKind.ENTRY_SUBMITTED, 1, b.next_client_id(Leg.ENTRY), quantity=D("0.010")))
        entry = book.get(b.id).entry_leg.client_id  # type: ignore[union-attr]
        book.apply(b.id, BracketEvent(EventKind.ENTRY_FILLED, 2, entry, quantity=D("0.010"), price=D("30000")))
        sl = book.get(b.id).next_client_id(Leg.STOP_LOSS)
        book.apply(b.id, BracketEvent(EventKind.SL_SUBMITTED, 3, sl, price=D("29000"), algo=True))
        book.apply(b.id, BracketEvent(EventKind.SL_ACKED, 4, sl, exchange_id=number))
    return book


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_journal(runs: int, count: int) -> None:
    rates, latencies = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            journal = Journal.open(Path(tmp) / "j.jsonl", CLOCK)
            each = []
            start = time.perf_counter()
            for n in range(count):
                t0 = time.perf_counter()
                journal.record_intent(_intent(n))
                each.append(time.perf_counter() - t0)
            rates.append(count / (time.perf_counter() - start))
            latencies.append(statistics.median(each) * 1000)
            journal.close()
    emit("state_journal", "intents_fsynced_per_s", rates, "intents/s")
    emit("state_journal", "intent_fsync_latency_p50", latencies, "ms")


def bench_snapshot(runs: int) -> None:
    book = _brackets(50)
    tracker = PositionTracker()
    tracker.open_balance("USDT", D("10000"))
    for n in range(400):
        tracker.apply_fill(_fill(n, Side.BUY if n % 3 else Side.SELL, f"SYM{n % 5}USDT"))
    document = {"brackets": book.to_document(), "tracker": tracker.to_dict(), "session": {"name": "bench"}}
    size = len(orjson.dumps(document))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = SnapshotWriter(FileSnapshotStore(Path(tmp), generations=10), lambda: document, CLOCK, 5.0)
        for _ in range(runs * 5):
            times.append(_timed(writer.save_now) * 1000)
    emit("state_snapshot", f"save_{size // 1024}KiB", times, "ms")


def bench_recovery(runs: int, entries: int) -> None:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = FileSnapshotStore(Path(tmp) / "s")
            journal = Journal.open(Path(tmp) / "j.jsonl", CLOCK, fsync=False)
            SnapshotWriter(store, lambda: {"brackets": _brackets(20).to_document()}, CLOCK, 5.0, journal).save_now()
            for n in range(entries):
                journal.record_fill(_fill(n, Side.BUY))
            journal.close()
            start = time.perf_counter()
            recover_local(store, Path(tmp) / "j.jsonl", CLOCK, fsync=False).journal.close()
            times.append((time.perf_counter() - start) * 1000)
    emit("state_recovery", f"recover_{entries}_entries", times, "ms")


def bench_tracker(runs: int, count: int) -> None:
    fills = [_fill(n, Side.BUY if (n // 3) % 2 else Side.SELL) for n in range(count)]
    rates = []
    for _ in range(runs):
        tracker = PositionTracker()
        elapsed = _timed(lambda: [tracker.apply_fill(f) for f in fills])  # noqa: B023
        rates.append(count / elapsed)
    emit("croupier_tracker", "fills_per_s", rates, "fills/s")


def bench_bracket(runs: int, count: int) -> None:
    base = Bracket("kbench", "BTCUSDT", Side.BUY, 1, D("0.010"))
    sent = transition(base, BracketEvent(EventKind.ENTRY_SUBMITTED, 1, base.next_client_id(Leg.ENTRY),
                                         quantity=D("0.010")))
    entry = sent.entry_leg.client_id  # type: ignore[union-attr]
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            transition(sent, BracketEvent(EventKind.ENTRY_PARTIAL_FILL, 2, entry, quantity=D("0.001"), price=D("1")))
        rates.append(count / (time.perf_counter() - start))
    emit("croupier_bracket", "transitions_per_s", rates, "transitions/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in well under a minute")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    bench_journal(runs, 100 if args.quick else 500)
    bench_snapshot(runs)
    bench_recovery(runs, 1000 if args.quick else 10_000)
    bench_tracker(runs, 2000 if args.quick else 20_000)
    bench_bracket(runs, 2000 if args.quick else 20_000)


if __name__ == "__main__":
    main()
