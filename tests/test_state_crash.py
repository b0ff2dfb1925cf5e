"""Crash safety with real processes: kill -9 a writer at random moments, then recover.

Each round starts ``tests/state_crash_child.py`` on the same directory (so every round also
recovers from the previous crash), lets it write snapshots and journal entries for a random
time, and SIGKILLs it; every other round the kill is aimed at a moment when a journal line is
half-written (the parent sees the file end without a newline), so torn lines really happen.
Afterwards the newest valid snapshot must load, the journal must parse (a torn last line is
reported, never fatal, and never costs an earlier entry), and snapshot + journal must account
for an unbroken run of fills 1..N with no gap and no duplicate.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.clock import LiveClock
from state.journal import scan
from state.recovery import recover_local
from state.snapshot import FileSnapshotStore

CHILD = Path(__file__).with_name("state_crash_child.py")
ROUNDS = 6


def _mid_line(path: Path) -> bool:
    """True while the journal's last line is still being written (its end is not a newline)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def _run_and_kill(directory: Path, delay_s: float, fsync: bool) -> None:
    args = [sys.executable, str(CHILD), str(directory)] + ([] if fsync else ["nosync"])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        time.sleep(delay_s)
        if not fsync:  # aim for the middle of a write(): poll until a line is half on disk
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not _mid_line(directory / "journal.jsonl"):
                pass
        assert proc.poll() is None, f"child died on its own: {proc.stderr.read() if proc.stderr else ''}"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_consistency(tmp_path: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    clock = LiveClock()
    torn_seen = 0
    last_total = 0
    for round_no in range(ROUNDS):
        _run_and_kill(tmp_path, rng.uniform(0.02, 0.35), fsync=round_no % 2 == 0)
        journal_path = tmp_path / "journal.jsonl"
        found = scan(journal_path)
        # only the very last line may be damaged, and only by being cut short
        assert all(b.torn for b in found.bad_lines) and len(found.bad_lines) <= 1, found.bad_lines
        if found.bad_lines:
            torn_seen += 1
            assert found.bad_lines[0].offset >= found.valid_length - 1
        seqs = [e.seq for e in found.entries]
        assert seqs == list(range(found.base_seq + 1, found.base_seq + 1 + len(seqs))), "gap inside the journal"

        store = FileSnapshotStore(tmp_path / "snapshots", generations=3)
        got = recover_local(store, journal_path, clock)
        got.journal.close()
        assert got.report.skipped_snapshots == (), "atomic replace must never expose a half-written snapshot"
        assert got.report.journal_gap is None and not got.report.undecodable
        snapshot_fills = int(got.state.get("fills", 0))
        numbers = [f.trade_id for f in got.fills]
        assert numbers == list(range(snapshot_fills + 1, snapshot_fills + 1 + len(numbers))), (
            f"round {round_no}: snapshot says {snapshot_fills}, journal continues with {numbers[:5]}…"
        )
        total = snapshot_fills + len(numbers)
        assert total >= last_total, "durable fills went missing between crashes"
        last_total = total
        assert len(got.unknown_intents) <= 1  # at most the one in flight when the kill came
    assert last_total > 0
    print(f"{ROUNDS} kills, {last_total} fills durable, torn tails seen: {torn_seen}")
