"""Time to protect: a bracket's first fill → its stop-loss acknowledged, on loopback.

    python bench/croupier.py           # 100 brackets
    python bench/croupier.py --quick   # 30 brackets, well under a minute

A Croupier places MARKET-entry brackets on the simulated exchange (``SimServer`` over
loopback, manual clock) through the real connector (``BinanceFutures``), with the journal
fsynced as in production. Each bracket is flattened before the next one. Wall-clock times
(``time.perf_counter``) are taken when the state machine applies the first entry fill and the
stop's acknowledgement — the window during which the position is unprotected. Prints one JSON
object per figure per line: p50 and p99 of time to protect, and p50 of decision → protected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import CroupierSettings  # noqa: E402
from core.types import Side  # noqa: E402
from croupier.bracket import EventKind  # noqa: E402
from tests.croupier_harness import Rig, decision, recorded  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(orjson.dumps({"bench": "croupier", "metric": metric, "value": round(value, 3), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(n: int, data_dir: Path) -> None:
    marks: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with Rig(recorded(data_dir), Path(tmp), CroupierSettings()) as rig:
            oco = rig.c.oco
            assert oco is not None
            original = oco.apply

            def timed_apply(bracket_id, event):  # type: ignore[no-untyped-def]
                after = original(bracket_id, event)
                seen = marks.setdefault(bracket_id, {})
                if event.kind in (EventKind.ENTRY_FILLED, EventKind.ENTRY_PARTIAL_FILL):
                    seen.setdefault("fill", time.perf_counter())
                elif event.kind is EventKind.SL_ACKED and after is not None:
                    seen.setdefault("sl", time.perf_counter())
                return after

            oco.apply = timed_apply  # type: ignore[method-assign]
            decided = []
            for i in range(n):
                mark = await rig.mark()
                side = Side.BUY if i % 2 == 0 else Side.SELL
                start = time.perf_counter()
                bid = await rig.c.open_bracket(decision("BTCUSDT", side, mark, tp=0.05, sl=0.05), Decimal("0.010"))
                assert bid is not None
                await rig.wait_for(lambda: rig.state(bid) == "PROTECTED", timeout=10)
                decided.append(marks[bid]["sl"] - start)
                await oco.flatten(bid, "bench")
                await rig.wait_for(lambda: rig.state(bid) == "CLOSED", timeout=10)
                # a bracket a minute on the venue's manual clock: its order-rate windows roll as
                # they would in a session (held still, 100 brackets' orders filled the minute's
                # budget and the next request waited on a window that never moved: a hang)
                await rig.server.advance(60)
    protect = [(m["sl"] - m["fill"]) * 1000 for m in marks.values() if "sl" in m and "fill" in m]
    emit("time_to_protect_p50", statistics.median(protect), "ms", len(protect))
    emit("time_to_protect_p99", percentile(protect, 0.99), "ms", len(protect))
    emit("decision_to_protected_p50", statistics.median(decided) * 1000, "ms", len(decided))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 brackets instead of 100")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="recorded data (default: ../shared/data)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the per-bracket flatten warnings are expected here
    asyncio.run(run(30 if args.quick else 100, args.data_dir))


if __name__ == "__main__":
    main()
