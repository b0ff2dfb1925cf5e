"""Memory soak: peak RSS and RSS growth over a 48 h-equivalent replay (2,880 bars × 50 symbols).

    python bench/soak.py            # 2,880 bars × 50 symbols, default sensor ensemble
    python bench/soak.py --quick    # 240 bars × 50 symbols, minimal EMA-cross strategy
    python bench/soak.py --bars 1440  # a mid-size run (24 h-equivalent) on a busy machine

The replay runs as a real ``python main.py replay`` subprocess on a temporary folder of 50
symlinks onto the recorded futures-2023 files. Every 0.5 s the resident set of the engine
process and of every descendant (the sensor workers) is read from /proc. Reported:
- peak RSS of the engine and of engine + workers;
- growth after warm-up: the RSS at the end versus the RSS when the trading phase had done 10 %
  of its bars (warm-up, imports and the first allocations of every ring are behind by then), in
  percent — target ≤ 5 %.
Progress: the trading phase runs from "engine ready" to "stop requested" (the data's end) in the
engine's log, read incrementally; during it the bench asks the engine for status.json (SIGUSR1)
every sample and reads ``bars_processed`` from it. The warm-up mark is the first sample at 10 %
of the planned bars. Every ``--progress-s`` seconds a JSON progress line (bars done, RSS, growth so
far) goes to stderr; Ctrl-C stops the replay and still prints the figures of the run so far
(``completed_fraction`` < 1). Samples of the shutdown that follows (workers exiting, the final
snapshot and report) are not part of the growth figure, only of the peaks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import soak_trace
from replay import MINIMAL, symlink_dataset  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def emit(metric: str, value: float, unit: str, runs: int = 1) -> None:
    print(orjson.dumps({"bench": "soak", "metric": metric, "value": round(value, 2), "unit": unit,
                        "runs": runs}).decode(), flush=True)


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def rss_split(pid: int) -> dict[str, int]:
    """RssAnon / RssFile / RssShmem of ``pid`` in bytes (the shared-memory rings count as RssShmem)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out.append(int(k))
            todo.append(int(k))
    return out


def toml_value(v: object) -> str:
    return json.dumps(v)


class LogTail:
    """The session log read incrementally: each poll reads only what was appended since the last.

    (Re-reading the whole log every half second cost O(log size) per sample — quadratic over a
    long run — on the very cores the replay needs.)
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path: Path | None = None
        self.offset = 0
        self.ready = self.stopping = False

    def poll(self) -> None:
        if self.path is None:
            found = list((self.root / "sessions").glob("*/casino.log")) if (self.root / "sessions").exists() else []
            if not found:
                return
            self.path = found[0]
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        # only whole lines: a marker cut in half by a concurrent write is seen on the next poll
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        text = chunk[:end]
        self.ready = self.ready or b"engine ready" in text
        self.stopping = self.stopping or b"stop requested" in text


def bars_done(session_dir: Path, pid: int) -> int | None:
    """The engine's ``bars_processed`` from status.json, asking for a fresh one (SIGUSR1) for next time."""
    status = session_dir / "status.json"
    done = None
    try:
        done = int(orjson.loads(status.read_bytes())["bars_processed"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    return done


class Soak:
    """Samples of one replay and the figures drawn from them (also from a partial run)."""

    def __init__(self, total_bars: int) -> None:
        self.total_bars = total_bars
        self.samples: list[tuple[float, int, int, int]] = []  # (t, engine, total, bars done) while trading
        self.peak_engine = self.peak_total = 0
        self.ready_t: float | None = None
        self.splits: list[dict[str, int]] = []  # the engine's RssAnon/RssFile/RssShmem, one per sample

    def add(self, engine: int, total: int, trading: bool, bars: int | None, split: dict[str, int]) -> None:
        self.peak_engine = max(self.peak_engine, engine)
        self.peak_total = max(self.peak_total, total)
        if trading and bars is not None:
            self.samples.append((time.monotonic(), engine, total, bars))
            self.splits.append(split)

    def mark(self) -> tuple[float, int, int, int] | None:
        """The first sample at or past 10 % of the planned bars (warm-up behind us)."""
        return next((s for s in self.samples if s[3] >= self.total_bars // 10), None)

    def progress_line(self) -> str:
        last = self.samples[-1]
        mark = self.mark()
        doc = {"bench": "soak", "progress": round(last[3] / self.total_bars, 4), "bars_done": last[3],
               "rss_engine_mb": round(last[1] / 2**20, 1), "rss_total_mb": round(last[2] / 2**20, 1),
               "elapsed_s": round(last[0] - (self.ready_t or last[0]), 1)}
        if mark is not None:
            doc["growth_engine_pct"] = round(100.0 * (last[1] - mark[1]) / mark[1], 2)
            doc["growth_total_pct"] = round(100.0 * (last[2] - mark[2]) / mark[2], 2)
        return orjson.dumps(doc).decode()

    def report(self, partial: bool) -> None:
        mark = self.mark()
        if mark is None or len(self.samples) < 4 or self.samples[-1] is mark:
            raise SystemExit("the trading phase was too short to judge growth")
        last = self.samples[-1]
        emit("peak_rss_engine_mb", self.peak_engine / 2**20, "MB")
        emit("peak_rss_total_mb", self.peak_total / 2**20, "MB")
        emit("rss_growth_engine_pct", 100.0 * (last[1] - mark[1]) / mark[1], "%")
        emit("rss_growth_total_pct", 100.0 * (last[2] - mark[2]) / mark[2], "%")
        emit("rss_engine_at_mark_mb", mark[1] / 2**20, "MB")
        emit("rss_engine_at_end_mb", last[1] / 2**20, "MB")
        at_mark, at_end = self.splits[self.samples.index(mark)], self.splits[-1]
        for key in ("RssAnon", "RssFile", "RssShmem"):  # where the engine's growth is
            if key in at_mark and key in at_end:
                emit(f"engine_{key.lower()}_growth_mb", (at_end[key] - at_mark[key]) / 2**20, "MB")
        emit("trading_phase_s", last[0] - self.samples[0][0], "s")
        emit("bars", last[3], "bars")
        emit("engine_bars_per_s", (last[3] - self.samples[0][3]) / max(1e-9, last[0] - self.samples[0][0]), "bars/s")
        emit("completed_fraction", last[3] / self.total_bars if partial else 1.0, "fraction")
        emit("load_average_1m", os.getloadavg()[0], "load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="240 bars × 50 symbols, minimal strategy")
    parser.add_argument("--bars", type=int, help="1m bars per symbol (default 2880, 240 with --quick)")
    parser.add_argument("--symbols", type=int, default=50, help="symbols (default 50)")
    parser.add_argument("--tracemalloc", type=int, metavar="FRAMES",
                        help="diagnostic: trace the engine's Python allocations (FRAMES deep) and print the "
                             "top growth from the warm-up mark to 97 %% of the bars (slow; RSS figures not comparable)")
    parser.add_argument("--malloc-stats", action="store_true",
                        help="diagnostic: pymalloc and glibc figures at the warm-up mark and at 97 %% of the bars, "
                             "and the RSS that malloc_trim(0) gives back then (bench/soak_trace.py)")
    parser.add_argument("--progress-s", type=float, default=30.0,
                        help="seconds between progress lines on stderr (JSON; Ctrl-C reports the run so far)")
    args = parser.parse_args()
    bars = args.bars or (240 if args.quick else 2880)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, names = symlink_dataset(root, args.symbols)
        lines = ["[session]", f"symbols = {toml_value(names)}", f'dataset = "{folder.name}"', 'log_format = "json"',
                 "[metrics]", "enabled = false", "[sensors]", "workers = 2"]
        if args.quick:
            lines[-1:-1] = [f"enabled = {toml_value(MINIMAL['sensors.enabled'])}"]
            lines += ["[player]", f"min_voters = {MINIMAL['player.min_voters']}"]
        (root / "casino.toml").write_text("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
        env["CASINO_DATA_DIR"] = str(root)
        launcher = [sys.executable, str(REPO / "main.py")]
        traced = bool(args.tracemalloc or args.malloc_stats)
        if traced:
            launcher = [sys.executable, soak_trace.__file__, str(args.tracemalloc or 0), str(REPO / "main.py")]
        proc = subprocess.Popen([*launcher, "replay", "--config", "casino.toml",
                                 "--duration", f"{bars}m"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        soak = Soak(bars * len(names))
        tail = LogTail(root)
        partial = False
        next_progress = time.monotonic() + args.progress_s
        traces: list[str] = []  # snapshot names requested so far
        try:
            while proc.poll() is None:
                engine = rss_bytes(proc.pid)
                total = engine + sum(rss_bytes(k) for k in descendants(proc.pid))
                done = None
                if not tail.stopping:
                    tail.poll()
                    if tail.ready and tail.path is not None and not tail.stopping:
                        # SIGUSR1 only once the engine is ready: its handler is installed by then
                        soak.ready_t = soak.ready_t or time.monotonic()
                        done = bars_done(tail.path.parent, proc.pid)
                soak.add(engine, total, tail.ready and not tail.stopping, done, rss_split(proc.pid))
                if traced and tail.ready and not traces:
                    soak_trace.request(root, soak_trace.START)
                    traces.append(soak_trace.START)
                if traced and done is not None and not tail.stopping:
                    for name, fraction in (("mark", 0.1), ("end", 0.97)):
                        if name not in traces and done >= fraction * soak.total_bars:
                            soak_trace.request(root, name)
                            traces.append(name)
                if soak.samples and time.monotonic() >= next_progress:
                    print(soak.progress_line(), file=sys.stderr, flush=True)
                    next_progress += args.progress_s
                time.sleep(0.5)
        except KeyboardInterrupt:  # stopped by hand: report what was measured so far
            partial = True
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0 and not partial:
            raise SystemExit(f"replay exited {proc.returncode}")
        snaps = [soak_trace.wait_snapshot(root, name, timeout_s=5.0) for name in ("mark", "end")]
        if traced and all(snaps):
            print("\n".join(soak_trace.malloc_lines(root, "mark", "end")), file=sys.stderr)
        if args.tracemalloc and all(snaps):
            print("\n".join(soak_trace.growth_lines(*snaps)), file=sys.stderr)
    soak.report(partial)


if __name__ == "__main__":
    main()
