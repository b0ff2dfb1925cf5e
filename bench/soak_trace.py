"""tracemalloc for bench/soak.py: what the engine process's Python heap gains during the trading phase.

``python bench/soak.py --tracemalloc 12`` runs the replay through this module instead of
``main.py``: a daemon thread in the engine process waits for request files that the bench drops
in the replay's folder. The first (when the engine is ready) starts tracemalloc (12 frames per
allocation); tracing the data loading and warm-up would take many times longer and tell
nothing about the trading phase, whose growth is what is measured. The next two — at the
warm-up mark (10 % of the bars) and near the end of the trading phase — are answered with a
tracemalloc snapshot dumped next to them. The bench then prints the top
growth between the two, grouped by traceback. The sensor workers are not traced (forkserver
children start a fresh interpreter).

Each answer also carries the allocators' own figures (``<name>.malloc.json``): pymalloc's arenas
and the bytes in its allocated blocks (``sys._debugmallocstats``), glibc's ``mallinfo2`` (heap
size, bytes in use, free bytes inside the heap, mmapped bytes), and for the last request the
resident set before and after ``malloc_trim(0)`` — so growth of live objects, pymalloc
fragmentation and glibc free-but-unreturned memory can be told apart. ``--malloc-stats`` alone
(no tracing) gives those figures at full speed.

Untraced, they also carry a census of the engine's own state: the deep size (``sys.getsizeof`` over
everything reachable, each object counted once, functions, modules, classes and the event
loop's machinery not followed) of each part the engine holds — tracker, session record,
croupier, exchange, player … — in that order, so growth can be pinned on a component even
without tracemalloc.

Only a diagnostic: tracing slows the engine several times over, and the RSS figures of a
traced run include tracemalloc's own bookkeeping, so they are not the soak's figures.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import json
import logging
import os
import re
import runpy
import sys
import tempfile
import threading
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUEST_SUFFIX = ".tmrequest"
SNAPSHOT_SUFFIX = ".tmsnap"


def request(folder: Path, name: str) -> None:
    """Ask the traced engine in ``folder`` for a snapshot called ``name``."""
    (folder / f"{name}{REQUEST_SUFFIX}").touch()


def wait_snapshot(folder: Path, name: str, timeout_s: float = 300.0) -> Path | None:
    """The snapshot file once the engine has written it (``None`` after ``timeout_s``)."""
    path = folder / f"{name}{SNAPSHOT_SUFFIX}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and not (folder / f"{name}{REQUEST_SUFFIX}").exists():
            return path
        time.sleep(0.5)
    return None


def malloc_lines(folder: Path, before: str, after: str) -> list[str]:
    """The allocators' figures at ``before`` and ``after`` side by side (MB)."""
    old = json.loads((folder / f"{before}.malloc.json").read_text())
    new = json.loads((folder / f"{after}.malloc.json").read_text())
    lines = []
    for section in ("pymalloc", "glibc"):
        for key, value in new[section].items():
            was = old[section].get(key)
            if was is not None and key not in ("ordblks", "smblks", "hblks", "usmblks", "fsmblks"):
                scale = 2**20 if key != "arenas" else 1
                lines.append(f"{section:8} {key:20} {was / scale:10.2f} → {value / scale:10.2f}  ({(value - was) / scale:+.2f})")
    for key, value in new.get("census", {}).items():
        was = old.get("census", {}).get(key, 0)
        lines.append(f"census   {key:20} {was / 2**20:10.2f} → {value / 2**20:10.2f}  ({(value - was) / 2**20:+.2f})")
    types_old, types_new = old.get("types", {}), new.get("types", {})
    grown = sorted(((types_new.get(k, 0) - types_old.get(k, 0), k) for k in set(types_old) | set(types_new)),
                   reverse=True)
    for diff, key in [g for g in grown if g[0] > 0][:12]:
        lines.append(f"types    {key[:20]:20} {types_old.get(key, 0) / 2**20:10.2f} → "
                     f"{types_new.get(key, 0) / 2**20:10.2f}  ({diff / 2**20:+.2f})")
    lines.append(f"rss (in process)              {old['rss'] / 2**20:10.2f} → {new['rss'] / 2**20:10.2f}")
    if "trim" in new:
        lines.append(f"malloc_trim(0) at {after}: rss {new['trim']['rss_before'] / 2**20:.2f} → "
                     f"{new['trim']['rss_after'] / 2**20:.2f} MB")
    return lines


def growth_lines(before: Path, after: Path, top: int = 25) -> list[str]:
    """The ``top`` tracebacks whose live bytes grew most from ``before`` to ``after``."""
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    # tracemalloc's own structures and the import machinery are not the engine's
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    old, new = old.filter_traces(filters), new.filter_traces(filters)
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    end = sum(s.size for s in stats)
    lines = [f"traced Python heap growth: {total / 2**20:+.2f} MB ({end / 2**20:.1f} MB at the end)"]
    for stat in stats[:top]:
        lines.append(f"{stat.size_diff / 2**20:+8.3f} MB  {stat.count_diff:+9d} blocks  (now {stat.size / 2**20:.2f} MB)")
        lines += [f"      {frame.filename}:{frame.lineno}" for frame in reversed(stat.traceback)]
    return lines


START = "start"
FINAL = "end"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pymalloc() -> dict[str, int]:
    """The figures of ``sys._debugmallocstats`` (it writes to the C stderr: captured through fd 2)."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    out = {}
    for label, key in (("# arenas allocated current", "arenas"), ("# bytes in allocated blocks", "allocated"),
                       ("# bytes in available blocks", "available")):
        m = re.search(re.escape(label) + r"\s*=\s*([\d,]+)", text)
        if m:
            out[key] = int(m.group(1).replace(",", ""))
    m = re.search(r"(\d+) unused pools \* (\d+) bytes", text)
    if m:
        out["unused_pools_bytes"] = int(m.group(1)) * int(m.group(2))
    return out


_OPAQUE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType, type,
           types.CodeType, types.FrameType, types.CoroutineType, types.GeneratorType, asyncio.AbstractEventLoop,
           asyncio.Future, asyncio.Handle, logging.Logger, threading.Thread)


def _deep_size(root: object, seen: set[int]) -> int:
    total, todo = 0, [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


_ENGINE: list[Any] = []  # the session's engine and its event loop, caught when it is built (see main)


def census() -> dict[str, int]:
    """Deep sizes of the engine's parts (bytes), each object counted in the first part reaching it."""
    if not _ENGINE:
        return {}
    engine = _ENGINE[0]
    p = engine.p
    seen: set[int] = set()
    parts = {
        "tracker.open": {s: b for s, b in p.tracker._open.items()},
        "tracker.history": p.tracker._history, "tracker.rest": p.tracker,
        "engine.tracker_state": engine._tracker_state,
        "record.prices": p.record.prices, "record.equity": p.record.equity,
        "record.latencies": p.record.latencies_s, "record.trades": p.record.trades, "record.rest": p.record,
        "engine.feeds": engine._feeds, "croupier": p.croupier, "exchange": p.exchange, "player": p.player,
        "risk": p.risk, "market": p.market, "pool": p.pool, "engine.rest": engine,
    }
    return {name: _deep_size(part, seen) for name, part in parts.items()}


def type_census() -> dict[str, int]:
    """``sys.getsizeof`` summed by type over the objects the collector tracks and that are not
    frozen (everything made since start-up; atoms such as floats and strings are not tracked,
    their containers are): growth held outside the engine's parts shows here too."""
    sizes: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        sizes[name] = sizes.get(name, 0) + sys.getsizeof(obj)
    return sizes


def malloc_figures(trim: bool, with_census: bool) -> dict[str, object]:
    """pymalloc and glibc figures now (and the census); with ``trim``, the RSS before and after
    ``malloc_trim(0)``."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    doc: dict[str, object] = {"rss": _rss(), "pymalloc": _pymalloc(), "census": census() if with_census else {},
                              "types": type_census() if with_census else {},
                              "glibc": {name: getattr(info, name) for name, _ in _MallInfo2._fields_}}
    if trim:
        before = _rss()
        libc.malloc_trim(0)
        doc["trim"] = {"rss_before": before, "rss_after": _rss()}
    return doc


def _on_loop(fn: Callable[[], Any]) -> Any:
    """``fn()`` run by the engine's event loop between two callbacks: not in the middle of a
    snapshot or a burst, whose temporaries would be counted as if they were kept."""
    if len(_ENGINE) < 2:
        return fn()
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        box.append(fn())
        done.set()

    _ENGINE[1].call_soon_threadsafe(run)
    done.wait()
    return box[0]


def _serve(folder: Path, frames: int) -> None:
    while True:
        for req in sorted(folder.glob(f"*{REQUEST_SUFFIX}")):
            name = req.name[: -len(REQUEST_SUFFIX)]
            if name == START:
                if frames:
                    tracemalloc.start(frames)
                req.unlink()
                continue
            (folder / f"{name}.malloc.json").write_text(json.dumps(_on_loop(functools.partial(malloc_figures, trim=name == FINAL, with_census=not frames))))
            if frames:
                tmp = folder / f"{name}.tmp"
                tracemalloc.take_snapshot().dump(str(tmp))
                tmp.replace(folder / f"{name}{SNAPSHOT_SUFFIX}")
            else:
                (folder / f"{name}{SNAPSHOT_SUFFIX}").touch()  # the answer: malloc figures only
            req.unlink()
        time.sleep(0.25)


def main() -> None:
    """``soak_trace.py FRAMES MAIN_PY ARGS…``: run MAIN_PY as __main__, tracing once asked to."""
    frames, script = int(sys.argv[1]), sys.argv[2]
    sys.path[0] = str(Path(script).resolve().parent)  # as if MAIN_PY ran itself (bench/ would shadow sensors/)
    from core.engine import Engine

    built = Engine.__init__

    def catch(self: Any, parts: Any) -> None:
        built(self, parts)
        _ENGINE[:] = [self, asyncio.get_running_loop()]

    Engine.__init__ = catch  # type: ignore[method-assign]
    threading.Thread(target=_serve, args=(Path.cwd(), frames), name="tracemalloc-snapshots", daemon=True).start()
    sys.argv = [script, *sys.argv[3:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
