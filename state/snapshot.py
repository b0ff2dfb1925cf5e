"""Atomic, generational JSON snapshots of the engine's state document.

A snapshot file is one JSON object::

    {"format": "casino-snapshot", "schema_version": 1, "seq": 42, "created_ms": ...,
     "sha256": "<hex of the canonical state bytes>", "state": {...}}

Writing (``FileSnapshotStore.save``): serialize → write ``.<name>.tmp`` → fsync the file →
``os.replace`` onto ``snapshot-<seq>.json`` → fsync the directory (so the rename itself
survives a power cut) → delete generations beyond the newest N. A crash at any point leaves
either the previous generation or the new one, never a half-written file under a final name.

Loading (``load_latest_report``) walks generations newest first and takes the first one that
parses, has the right format, a known schema version and a matching checksum. Every skipped
file is logged at ERROR and listed in the report. A snapshot written by a *newer* schema is
refused with ``StateError`` instead of being skipped: silently falling back to older state
would throw away whatever the newer build knew.

``SnapshotWriter`` owns the "dirty" flag: state changes mark it, ``save_now`` writes on demand
and ``save_in_background`` hands the write to a writer thread (bracket transitions), and
``due``/``run`` make sure a dirty state never waits longer than ``snapshot_interval_s``. After
each save has landed the journal is compacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.errors import StateError
from core.ports import Clock
from state import codec

log = logging.getLogger(__name__)

FORMAT = "casino-snapshot"
_NAME_RE = re.compile(r"^snapshot-(\d{12})\.json$")


@dataclass(frozen=True, slots=True)
class SkippedSnapshot:
    """A generation that could not be used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class PreparedSnapshot:
    """A state document encoded and numbered, not yet written (``FileSnapshotStore.prepare``)."""

    seq: int
    state: dict[str, Any]
    created_ms: int


@dataclass(frozen=True, slots=True)
class SnapshotLoad:
    """What ``load_latest_report`` found: the state (None when no valid snapshot) and what it skipped."""

    state: dict[str, Any] | None
    path: Path | None
    seq: int
    created_ms: int
    schema_version: int
    skipped: tuple[SkippedSnapshot, ...] = ()

    @property
    def found(self) -> bool:
        return self.state is not None


def fsync_directory(directory: Path) -> None:
    """fsync a directory so a rename/creation/removal in it is durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, payload: bytes, *more: bytes) -> None:
    """Write ``payload`` (then each of ``more``) to ``path`` atomically and durably
    (tmp → fsync → replace → fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for part in (payload, *more):
            view = memoryview(part)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


class FileSnapshotStore:
    """``core.ports.SnapshotStore`` on a local directory, keeping the newest ``generations`` files."""

    def __init__(self, directory: Path, *, generations: int = 10, clock: Clock | None = None) -> None:
        if generations < 1:
            raise ValueError("generations must be at least 1")
        self.directory = Path(directory)
        self.generations = generations
        self._clock = clock
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp()
        existing = self.generation_paths()
        self._next_seq = (_seq_of(existing[0]) + 1) if existing else 1

    # -- writing ----------------------------------------------------------------------

    def save(self, document: dict[str, Any]) -> Path:
        """Persist ``document`` as the newest generation and prune old ones; returns its path."""
        return self.write(self.prepare(document))

    def prepare(self, document: dict[str, Any]) -> PreparedSnapshot:
        """The first half of ``save``: ``document`` encoded and given the next generation number.

        The encoded tree shares no mutable container with the live state (``codec.encode``
        builds new ones; ``Encoded`` sections are immutable bytes), so ``write`` may run on
        another thread while the state changes."""
        state = codec.encode(document)
        if not isinstance(state, dict):
            raise StateError("a snapshot document must be a mapping")
        seq = self._next_seq
        self._next_seq = seq + 1  # a write that fails leaves a gap in the numbers, never a reuse
        return PreparedSnapshot(seq, state, self._clock.now_ms() if self._clock else 0)

    def write(self, prepared: PreparedSnapshot) -> Path:
        """The second half of ``save``: serialise, write atomically and durably, prune."""
        body = codec.dumps_plain(prepared.state)
        head = {
            "format": FORMAT,
            "schema_version": codec.SCHEMA_VERSION,
            "seq": prepared.seq,
            "created_ms": prepared.created_ms,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        path = self.directory / f"snapshot-{prepared.seq:012d}.json"
        # The file is dumps_plain(head | {"state": state}): keys are sorted and "state" sorts
        # last, so it is the head's object with the state's bytes appended as its last member.
        # Written in pieces, the state is serialised once and the several-megabyte body is
        # not copied into a second buffer (with 50 symbols a snapshot is ~4 MB, written after
        # bracket transitions all session long: transient peaks in the engine's RSS).
        write_atomic(path, codec.dumps_plain(head)[:-1], b',"state":', body, b"}")
        self._prune()
        return path

    def _prune(self) -> None:
        for old in self.generation_paths()[self.generations :]:
            try:
                old.unlink()
            except FileNotFoundError:
                continue

    def _remove_stale_tmp(self) -> None:
        for tmp in self.directory.glob(".snapshot-*.json.tmp"):
            log.warning("removing a snapshot temp file left by a crash: %s", tmp)
            tmp.unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------

    def generation_paths(self) -> list[Path]:
        """Snapshot files present, newest first."""
        found = [p for p in self.directory.iterdir() if _NAME_RE.match(p.name)]
        return sorted(found, key=_seq_of, reverse=True)

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """``SnapshotStore`` protocol: the newest valid snapshot's state and path, or None."""
        report = self.load_latest_report()
        if report.state is None or report.path is None:
            return None
        return report.state, report.path

    def load_latest_report(self) -> SnapshotLoad:
        """Newest valid generation plus every generation skipped on the way (logged loudly)."""
        skipped: list[SkippedSnapshot] = []
        for path in self.generation_paths():
            try:
                envelope = read_snapshot(path)
            except _Corrupt as exc:
                log.error("snapshot %s is unusable (%s); falling back to the previous generation", path, exc)
                skipped.append(SkippedSnapshot(path, str(exc)))
                continue
            if skipped:
                log.error(
                    "loaded snapshot %s after skipping %d newer unusable generation(s): %s",
                    path.name, len(skipped), ", ".join(s.path.name for s in skipped),
                )
            return SnapshotLoad(
                state=envelope["state"],
                path=path,
                seq=envelope["seq"],
                created_ms=envelope["created_ms"],
                schema_version=envelope["schema_version"],
                skipped=tuple(skipped),
            )
        if skipped:
            log.error("no usable snapshot: all %d generation(s) are corrupt", len(skipped))
        return SnapshotLoad(None, None, 0, 0, codec.SCHEMA_VERSION, tuple(skipped))


class _Corrupt(Exception):
    """A snapshot file that must be skipped (internal: never escapes this module)."""


def read_snapshot(path: Path) -> dict[str, Any]:
    """Read and verify one snapshot file; ``StateError`` for a newer schema, ``_Corrupt`` otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Corrupt(f"unreadable: {exc}") from exc
    if not raw:
        raise _Corrupt("empty file")
    try:
        envelope = codec.loads(raw)
    except StateError as exc:
        raise _Corrupt(f"truncated or malformed JSON ({len(raw)} bytes): {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise _Corrupt("not a Casino snapshot (format field missing or wrong)")
    try:
        codec.check_schema_version(envelope.get("schema_version"), f"snapshot {path}")
    except StateError as exc:
        if isinstance(envelope.get("schema_version"), int) and envelope["schema_version"] > codec.SCHEMA_VERSION:
            raise
        raise _Corrupt(str(exc)) from exc
    state = envelope.get("state")
    seq = envelope.get("seq")
    if not isinstance(state, dict) or not isinstance(seq, int) or not isinstance(envelope.get("created_ms"), int):
        raise _Corrupt("missing state, seq or created_ms")
    if seq != _seq_of(path):
        raise _Corrupt(f"seq {seq} does not match the file name")
    digest = hashlib.sha256(codec.dumps_plain(state)).hexdigest()
    if digest != envelope.get("sha256"):
        raise _Corrupt("checksum mismatch (content altered after writing)")
    return envelope


def _seq_of(path: Path) -> int:
    match = _NAME_RE.match(path.name)
    if match is None:
        raise ValueError(f"not a snapshot file name: {path.name}")
    return int(match.group(1))


# ------------------------------------------------------------------------------ writer


class Compactable(Protocol):
    """What the writer needs from the journal: its position, pending intents, and compaction."""

    @property
    def last_seq(self) -> int: ...

    @property
    def base_seq(self) -> int: ...

    def pending_document(self) -> list[dict[str, Any]]: ...

    def compact(self, through_seq: int) -> int: ...


JOURNAL_KEY = "journal"
"""Key of the snapshot section that records how far the journal is reflected in it."""


class SnapshotWriter:
    """Saves the state document on demand and at least every ``interval_s`` while dirty.

    ``build`` returns the engine's state document (brackets, tracker, risk, weights, session
    metadata …); the writer adds the ``journal`` section (last journal seq reflected and the
    intents still pending) and, after a successful save, compacts the journal down to what the
    oldest kept generation still needs, so falling back to any kept generation replays forward
    without a gap.

    Two ways to save:

    * ``save_now``: built, written and fsynced before it returns. For the points where
      something must be durable before the caller goes on (a new bracket's meta before its
      entry leaves, start-up, shutdown).
    * ``save_in_background``: built and encoded now, on the caller's thread, so it is the state
      of this instant; serialised, written and fsynced by one writer thread while the event
      loop goes on. With 50 symbols a snapshot is ~4 MB and its write + fsync took ~15 ms of a
      ~30 ms save on the loop, after every bracket transition. Requests made while a write is
      in flight are coalesced into one more save of the state as it is when that write lands.
      Nothing is weakened: until the write is durable the previous generation and the journal
      (compacted only after the write, from the loop) hold everything; a write that fails is
      logged and leaves the state dirty, so the next request or the interval writes it again.
    """

    def __init__(
        self,
        store: FileSnapshotStore,
        build: Callable[[], dict[str, Any]],
        clock: Clock,
        interval_s: float,
        journal: Compactable | None = None,
        *,
        compact_min_entries: int = 1,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if compact_min_entries < 1:
            raise ValueError("compact_min_entries must be at least 1")
        self.store = store
        # Compaction rewrites and fsyncs the journal on the caller's thread (~2 fsyncs); recovery
        # skips entries a snapshot reflects anyway, so it can wait until this many can go.
        self.compact_min_entries = compact_min_entries
        self.build = build
        self.clock = clock
        self.interval_s = interval_s
        self.journal = journal
        self.saves = 0
        self.failed_background_saves = 0
        self._dirty = False
        self._dirty_since: float | None = None
        self._journal_marks: dict[int, int] = {}
        self._thread: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[Path], int] | None = None  # (the write, its journal mark)
        self._again = False  # a background save was requested while one was in flight

    @property
    def dirty(self) -> bool:
        return self._dirty

    @property
    def writing(self) -> bool:
        """True while a background write is in flight."""
        return self._in_flight is not None

    def mark_dirty(self) -> None:
        """Record that the in-memory state differs from the newest snapshot."""
        if not self._dirty:
            self._dirty = True
            self._dirty_since = self.clock.monotonic()

    def due(self) -> bool:
        """True when the state is dirty and has waited ``interval_s`` since it became dirty."""
        return self._dirty and self._dirty_since is not None and (
            self.clock.monotonic() - self._dirty_since >= self.interval_s
        )

    def save_now(self) -> Path:
        """Write a snapshot now (dirty or not), durably before returning, then compact the journal."""
        # this save covers whatever waited for the write in flight: cleared first, so that write
        # landing does not start another one beside this (generations land in order)
        self._again = False
        self.flush()
        prepared, journal_seq = self._prepare()
        try:
            path = self.store.write(prepared)
        except BaseException:
            self.mark_dirty()
            raise
        self._landed(path, journal_seq)
        return path

    def save_in_background(self) -> None:
        """Snapshot the state as it is now; write it on the writer thread (see the class docstring).

        Without a running event loop (a synchronous caller) this is ``save_now``."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save_now()
            return
        if self._in_flight is not None:
            self._again = True
            return
        prepared, journal_seq = self._prepare()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="casino-snapshot")
        future = self._thread.submit(self.store.write, prepared)
        self._in_flight = (future, journal_seq)
        future.add_done_callback(lambda done: self._hand_back(loop, done))

    def flush(self) -> None:
        """Wait for a background write in flight (blocking) and account for it."""
        if self._in_flight is not None:
            future = self._in_flight[0]
            futures_wait([future])
            self._background_done(future)

    def close(self) -> None:
        """Finish a background write in flight (and the one it may start) and stop the writer thread."""
        while self._in_flight is not None:
            self.flush()
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _prepare(self) -> tuple[PreparedSnapshot, int]:
        document = dict(self.build())
        if JOURNAL_KEY in document:
            raise StateError(f"the state document must not use the reserved key {JOURNAL_KEY!r}")
        journal_seq = 0
        if self.journal is not None:
            journal_seq = self.journal.last_seq
            document[JOURNAL_KEY] = {"seq": journal_seq, "pending": self.journal.pending_document()}
        prepared = self.store.prepare(document)
        # what was dirty is in this document; a change from here on marks it dirty again
        self._dirty = False
        self._dirty_since = None
        return prepared, journal_seq

    def _landed(self, path: Path, journal_seq: int) -> None:
        self.saves += 1
        if self.journal is not None:
            self._journal_marks[_seq_of(path)] = journal_seq
            # the new generation's own mark is ≤ the journal's end, so this never overshoots
            through = self._compactable_through()
            if through - self.journal.base_seq >= self.compact_min_entries:
                self.journal.compact(through)

    def _hand_back(self, loop: asyncio.AbstractEventLoop, future: Future[Path]) -> None:
        """On the writer thread: the loop accounts for the write (``flush`` does if the loop is gone)."""
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._background_done, future)

    def _background_done(self, future: Future[Path]) -> None:
        """On the loop (or in ``flush``): account for a finished background write, once."""
        if self._in_flight is None or self._in_flight[0] is not future:
            return  # already accounted for by flush()
        journal_seq = self._in_flight[1]
        self._in_flight = None
        try:
            path = future.result()
        except Exception as exc:  # noqa: BLE001 - disk full, permissions…: stays dirty, written again
            self.failed_background_saves += 1
            self.mark_dirty()
            log.error("background snapshot failed (%s: %s); the journal keeps every change until one lands",
                      type(exc).__name__, exc)
        else:
            self._landed(path, journal_seq)
        if self._again:
            self._again = False
            self.save_in_background()

    def _compactable_through(self) -> int:
        """Highest journal seq reflected in EVERY usable kept generation.

        Compacting only that far means a fall back to the oldest kept generation (because the
        newer ones turned out corrupt) still finds every later journal entry to replay.
        Generations written by an earlier process are read once to learn their mark.
        """
        kept = self.store.generation_paths()
        marks: dict[int, int] = {}
        for path in kept:
            seq = _seq_of(path)
            if seq not in self._journal_marks:
                try:
                    section = read_snapshot(path)["state"].get(JOURNAL_KEY) or {}
                    self._journal_marks[seq] = int(section.get("seq", 0))
                except (_Corrupt, StateError, TypeError, ValueError, AttributeError):
                    self._journal_marks[seq] = -1  # unusable: never a fall-back target
            if self._journal_marks[seq] >= 0:
                marks[seq] = self._journal_marks[seq]
        self._journal_marks = {s: m for s, m in self._journal_marks.items() if s in {_seq_of(p) for p in kept}}
        return min(marks.values()) if marks else 0

    def maybe_save(self) -> Path | None:
        """Save when ``due()``; returns the path written, or None."""
        return self.save_now() if self.due() else None

    async def run(self) -> None:
        """Background loop: wake every ``interval_s / 4`` and save in the background when due. Cancel to stop."""
        tick = max(self.interval_s / 4, 0.01)
        while True:
            await self.clock.sleep(tick)
            if self.due():
                self.save_in_background()
