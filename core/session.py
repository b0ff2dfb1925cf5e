"""A timed session around the engine: signals, timer, crash handling, report, exit code.

Exit codes: 0 ok (including a signal or the duration ending it), 3 preflight failed,
4 crashed — and the report is written in every case, a crash included.
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from core.engine import Engine, PreflightFailed
from core.heap import freeze_startup_heap, return_large_blocks
from core.observability import ObservabilityServer, measure_loop_lag
from core.ports import Clock
from core.report import write_report

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PREFLIGHT = 3
EXIT_CRASHED = 4


@dataclass
class SessionRun:
    """What the composition root hands over, besides the engine."""

    engine: Engine
    duration_s: float
    duration_clock: Clock  # real time for paper/live; the data's clock for a replay
    metrics: ObservabilityServer | None = None
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_progress: Callable[[], None] | None = None  # replay progress bar


def write_status(engine: Engine, session_dir: Path) -> None:
    """status.json (SIGUSR1 / SIGUSR2): written atomically enough for a human to read."""
    path = session_dir / "status.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(engine.status(), default=str, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


async def run_session(run: SessionRun) -> int:
    engine = run.engine
    parts = engine.p
    record = parts.record
    control = parts.control
    exit_code = EXIT_OK
    try:
        control.install_signal_handlers()
    except (NotImplementedError, RuntimeError):  # not the main thread / not Unix
        log.warning("signal handlers not installed: stop the session with --duration")
    try:
        if run.metrics is not None:
            await run.metrics.start()
        log.info("session %s starting (%s, %s, exit policy %s)", record.session_id, parts.settings.session.mode,
                 ",".join(record.symbols), parts.settings.session.on_exit, extra={"session": record.session_id})
        return_large_blocks()  # snapshots' multi-MB buffers in mappings of their own, not the heap
        await engine.start()
        freeze_startup_heap()  # one session per process: full collections stay off the decision path
        if math.isfinite(run.duration_s):
            parts.extra_tasks.append(lambda: control.run_timer(run.duration_clock, run.duration_s))
        parts.extra_tasks.append(measure_loop_lag)
        if run.on_progress is not None:
            progress = run.on_progress

            async def tick() -> None:
                while True:
                    progress()
                    await asyncio.sleep(0.5)

            parts.extra_tasks.append(tick)
        record.exit_reason = await engine.run()
    except PreflightFailed as exc:
        exit_code = EXIT_PREFLIGHT
        record.exit_reason = "preflight_failed"
        record.errors.append({"time_ms": parts.clock.now_ms(), "kind": "preflight", "message": str(exc)[:2000]})
        log.error("preflight failed: %s", exc)
    except (Exception, ExceptionGroup) as exc:  # noqa: BLE001 - the crash path must see everything
        exit_code = EXIT_CRASHED
        record.crashed = True
        record.exit_reason = f"crashed: {type(exc).__name__}"
        text = "".join(traceback.format_exception(exc))
        record.errors.append({"time_ms": parts.clock.now_ms(), "kind": "crash", "message": text[-4000:]})
        log.error("session crashed:\n%s", text)
        await _emergency_exit(engine)
    finally:
        control.remove_signal_handlers()
        record.ended_ms = parts.clock.now_ms()
        if engine.ready:
            engine.update_account_metrics()
        try:
            json_path, html_path = write_report(record, parts.session_dir)
            log.info("report: %s", html_path)
        except Exception:  # the report must not hide the real exit code
            log.exception("writing the report failed")
        if run.metrics is not None:
            await run.metrics.stop()
        for cleanup in reversed(run.cleanups):
            try:
                await cleanup()
            except Exception:
                log.exception("cleanup failed")
    return exit_code


async def _emergency_exit(engine: Engine) -> None:
    """After a crash: apply the exit policy if the exchange still answers, then snapshot."""
    policy = engine.s.session.on_exit
    try:
        async with asyncio.timeout(60):
            result = await engine.p.croupier.shutdown(policy, urgent=True)
        engine.p.record.open_positions = list(getattr(result, "open_positions", []) or [])
        engine.p.record.notes.append(f"after the crash the exit policy '{policy}' was applied")
    except Exception as exc:  # noqa: BLE001 - unreachable exchange: say so in the report
        engine.p.record.notes.append(f"after the crash the exit policy could not be applied: {exc!r}"[:500])
        log.exception("emergency exit failed")
