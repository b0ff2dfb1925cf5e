"""Time to protect is real time: first entry fill applied → first stop acknowledged.

``casino_unprotected_seconds`` runs on the session clock (events' ``time_ms``), which a paper
session runs N× faster than real time; ``casino_time_to_protect_seconds`` and the book's
``on_protected`` callback (the report's ``latency_s.protect``) measure the same window on the
real monotonic clock. Here the session clock says 250 ms while 30 ms really pass.
"""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path

from core import metrics
from core.clock import FakeClock
from core.types import Side
from croupier.bracket import Bracket, BracketEvent
from croupier.bracket import EventKind as K
from croupier.bracket_book import BracketBook, journal_sink
from state.recovery import recover_local
from state.snapshot import FileSnapshotStore

CID = "ck3x9q0BTCUSDT.1"


def _book(tmp_path: Path) -> tuple[BracketBook, list[tuple[str, float]], object]:
    recovered = recover_local(FileSnapshotStore(tmp_path / "snap"), tmp_path / "journal.jsonl", FakeClock())
    book = BracketBook(journal_sink(recovered.journal))
    heard: list[tuple[str, float]] = []
    book.on_protected = lambda bid, seconds: heard.append((bid, seconds))
    return book, heard, recovered.journal


def _count(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def test_time_to_protect_is_measured_in_real_time_once_per_bracket(tmp_path: Path) -> None:
    book, heard, journal = _book(tmp_path)
    b = book.open(Bracket("k3x9q0", "BTCUSDT", Side.BUY, 1, D("0.010"), created_ms=1))
    protect_before, unprotected_before = (_count("casino_time_to_protect_seconds_count"),
                                          _count("casino_unprotected_seconds_count"))
    book.apply(b.id, BracketEvent(K.ENTRY_SUBMITTED, 1_000, f"{CID}E0", quantity=D("0.010")))
    book.apply(b.id, BracketEvent(K.ENTRY_PARTIAL_FILL, 1_100, f"{CID}E0", quantity=D("0.004"), price=D("100")))
    started = time.monotonic()
    book.apply(b.id, BracketEvent(K.SL_SUBMITTED, 1_120, f"{CID}S0", price=D("99"), algo=True))
    time.sleep(0.03)
    assert heard == []  # not protected yet
    book.apply(b.id, BracketEvent(K.SL_ACKED, 1_350, f"{CID}S0", exchange_id=3))
    elapsed = time.monotonic() - started
    assert len(heard) == 1 and heard[0][0] == b.id
    assert 0.03 <= heard[0][1] <= elapsed + 0.001  # real seconds, not the session clock's 0.25
    assert _count("casino_time_to_protect_seconds_count") == protect_before + 1
    assert _count("casino_unprotected_seconds_count") == unprotected_before + 1
    # further fills and a resized stop are not a second "time to protect"
    book.apply(b.id, BracketEvent(K.ENTRY_FILLED, 1_400, f"{CID}E0", quantity=D("0.006"), price=D("100")))
    book.apply(b.id, BracketEvent(K.SL_SUBMITTED, 1_420, f"{CID}S1", quantity=D("0.010"), price=D("99"), algo=True))
    book.apply(b.id, BracketEvent(K.SL_ACKED, 1_450, f"{CID}S1", exchange_id=4))
    assert len(heard) == 1 and _count("casino_time_to_protect_seconds_count") == protect_before + 1
    journal.close()  # type: ignore[attr-defined]


def test_a_bracket_flattened_before_its_stop_is_not_timed(tmp_path: Path) -> None:
    book, heard, journal = _book(tmp_path)
    b = book.open(Bracket("k3x9q0", "BTCUSDT", Side.SELL, 1, D("0.010"), created_ms=1))
    before = _count("casino_time_to_protect_seconds_count")
    book.apply(b.id, BracketEvent(K.ENTRY_SUBMITTED, 1_000, f"{CID}E0", quantity=D("0.010")))
    book.apply(b.id, BracketEvent(K.ENTRY_FILLED, 1_100, f"{CID}E0", quantity=D("0.010"), price=D("100")))
    book.apply(b.id, BracketEvent(K.FLATTEN_SUBMITTED, 1_200, f"{CID}F0", quantity=D("0.010"), failed=True,
                                  reason="protection failed"))
    book.apply(b.id, BracketEvent(K.EXIT_FILL, 1_300, f"{CID}F0", quantity=D("0.010"), price=D("100"), final=True))
    book.apply(b.id, BracketEvent(K.FAIL, 1_400, reason="protection failed"))
    assert heard == [] and _count("casino_time_to_protect_seconds_count") == before
    assert book.drop_terminal() == 1
    journal.close()  # type: ignore[attr-defined]
