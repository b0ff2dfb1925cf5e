"""Local half of start-up recovery: newest valid snapshot + the journal written after it.

``recover_local`` never needs the exchange. It

1. loads the newest valid snapshot generation (corrupt ones are skipped and named; a newer
   schema is refused with ``StateError``),
2. opens the journal, cutting off a torn last line (reported, never fatal),
3. replays every entry newer than the snapshot: bracket transitions overlay the snapshot's
   bracket records (the last record of a bracket wins), fills and incomes are collected for
   the position tracker, intents and outcomes rebuild the set of intents whose outcome is
   unknown,
4. reports every irregularity, including a *gap* (journal entries the snapshot does not reflect
   that were already compacted away — only possible when newer generations were corrupt).

What it returns is resolved against the exchange by the exchange-facing half of recovery:
each unknown intent is looked up by its client id before anything is re-sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StateError
from core.ports import Clock
from core.types import Fill, Income
from state.journal import (
    BadLine,
    EntryKind,
    IntentOutcome,
    Journal,
    JournaledIntent,
    decode_fill,
    decode_income,
    decode_intent,
    decode_outcome,
    decode_pending,
)
from state.snapshot import JOURNAL_KEY, FileSnapshotStore, SkippedSnapshot

log = logging.getLogger(__name__)

BRACKETS_KEY = "brackets"
"""Snapshot section holding bracket records by bracket id (as the croupier encodes them)."""

JOURNAL_FILE = "journal.jsonl"
SNAPSHOT_DIR = "snapshots"


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recovery found, for the log and the session report."""

    snapshot_path: Path | None
    snapshot_seq: int
    snapshot_journal_seq: int
    skipped_snapshots: tuple[SkippedSnapshot, ...]
    journal_bad_lines: tuple[BadLine, ...]
    journal_base_seq: int
    journal_last_seq: int
    journal_gap: tuple[int, int] | None
    replayed: dict[str, int]
    undecodable: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing had to be skipped and nothing is missing."""
        return not (self.skipped_snapshots or self.journal_bad_lines or self.journal_gap or self.undecodable)

    def problems(self) -> list[str]:
        """Every irregularity as one readable line."""
        out = [f"snapshot {s.path.name} skipped: {s.reason}" for s in self.skipped_snapshots]
        out += [
            f"journal line {b.line_no} skipped{' (torn by a crash)' if b.torn else ''}: {b.reason}"
            for b in self.journal_bad_lines
        ]
        if self.journal_gap:
            out.append(
                f"journal entries {self.journal_gap[0]}..{self.journal_gap[1]} are not in the snapshot "
                "and were already compacted away: reconcile with the exchange"
            )
        out += list(self.undecodable)
        return out


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """The rebuilt local state; ``journal`` is open for appending, numbering continued."""

    state: dict[str, Any]
    brackets: dict[str, dict[str, Any]]
    fills: tuple[Fill, ...]
    incomes: tuple[Income, ...]
    unknown_intents: tuple[JournaledIntent, ...]
    last_outcomes: dict[int, IntentOutcome]
    journal: Journal
    report: RecoveryReport = field(repr=False)


def recover_local(store: FileSnapshotStore, journal_path: Path, clock: Clock, *, fsync: bool = True) -> RecoveredState:
    """Load the newest valid snapshot, replay the journal after it, return state + unknown intents."""
    loaded = store.load_latest_report()  # StateError for a newer schema propagates on purpose
    state: dict[str, Any] = dict(loaded.state or {})
    section = state.pop(JOURNAL_KEY, None) or {}
    undecodable: list[str] = []
    snapshot_journal_seq = int(section.get("seq", 0)) if isinstance(section, dict) else 0
    pending: dict[int, JournaledIntent] = {}
    for raw in section.get("pending", []) if isinstance(section, dict) else []:
        try:
            ticket = decode_pending(raw)
        except (StateError, KeyError, TypeError, ValueError) as exc:
            undecodable.append(f"snapshot pending intent unreadable: {exc}")
            continue
        pending[ticket.seq] = ticket

    journal = Journal.open(journal_path, clock, fsync=fsync, min_seq=snapshot_journal_seq)
    found = journal.last_scan
    assert found is not None  # set by Journal.open
    gap = None
    if found.base_seq > snapshot_journal_seq:
        gap = (snapshot_journal_seq + 1, found.base_seq)
        log.error(
            "journal entries %d..%d were compacted away but the snapshot in use only reflects up to %d",
            gap[0], gap[1], snapshot_journal_seq,
        )

    brackets: dict[str, dict[str, Any]] = dict(state.get(BRACKETS_KEY) or {})
    fills: list[Fill] = []
    incomes: list[Income] = []
    outcomes: dict[int, IntentOutcome] = {}
    replayed = {kind.value: 0 for kind in EntryKind if kind is not EntryKind.COMPACTED}
    for entry in found.entries:
        if entry.seq <= snapshot_journal_seq:
            continue
        try:
            if entry.kind is EntryKind.INTENT:
                ticket = decode_intent(entry)
                pending[ticket.seq] = ticket
            elif entry.kind is EntryKind.OUTCOME:
                outcome = decode_outcome(entry)
                outcomes[outcome.intent_seq] = outcome
                if outcome.status.is_final:
                    pending.pop(outcome.intent_seq, None)
            elif entry.kind is EntryKind.TRANSITION:
                bracket_id = entry.data["bracket_id"]
                record = entry.data["bracket"]
                if not isinstance(bracket_id, str) or not isinstance(record, dict):
                    raise StateError("transition without bracket_id/bracket record")
                brackets[bracket_id] = record
            elif entry.kind is EntryKind.FILL:
                fills.append(decode_fill(entry))
            elif entry.kind is EntryKind.INCOME:
                incomes.append(decode_income(entry))
        except (StateError, KeyError, TypeError, ValueError) as exc:
            message = f"journal entry {entry.seq} ({entry.kind.value}) unreadable: {exc}"
            log.error(message)
            undecodable.append(message)
            continue
        replayed[entry.kind.value] += 1

    if brackets:
        state[BRACKETS_KEY] = brackets
    journal.set_pending(pending.values())
    report = RecoveryReport(
        snapshot_path=loaded.path,
        snapshot_seq=loaded.seq,
        snapshot_journal_seq=snapshot_journal_seq,
        skipped_snapshots=loaded.skipped,
        journal_bad_lines=found.bad_lines,
        journal_base_seq=found.base_seq,
        journal_last_seq=journal.last_seq,
        journal_gap=gap,
        replayed=replayed,
        undecodable=tuple(undecodable),
    )
    unknown = tuple(pending[s] for s in sorted(pending))
    if unknown:
        log.warning(
            "%d order intent(s) with unknown outcome must be resolved by client id: %s",
            len(unknown), ", ".join(t.intent.client_id for t in unknown),
        )
    for problem in report.problems():
        log.error("recovery: %s", problem)
    return RecoveredState(
        state=state,
        brackets=brackets,
        fills=tuple(fills),
        incomes=tuple(incomes),
        unknown_intents=unknown,
        last_outcomes={s: o for s, o in outcomes.items() if s in pending},
        journal=journal,
        report=report,
    )


def recover_state_dir(
    state_dir: Path, clock: Clock, *, generations: int = 10, fsync: bool = True
) -> tuple[FileSnapshotStore, RecoveredState]:
    """Open a session's state directory (``snapshots/`` + ``journal.jsonl``) and recover it.

    ``generations`` and ``fsync`` come from ``[croupier] snapshot_generations`` / ``journal_fsync``.
    """
    state_dir = Path(state_dir)
    store = FileSnapshotStore(state_dir / SNAPSHOT_DIR, generations=generations, clock=clock)
    return store, recover_local(store, state_dir / JOURNAL_FILE, clock, fsync=fsync)
