"""Helpers for end-to-end session tests: real `python main.py` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CASINO_SHARED_DIR", REPO.parent / "shared"))

# A session tuned to decide often and quickly in tests (every rule still applies).
FAST_CONFIG = """
[session]
symbols = ["BTCUSDT", "ETHUSDT"]
dataset = "futures-2023"
log_format = "json"
shutdown_wait_s = 5.0

[sim]
warmup_bars = 7200

[sensors]
timeframes = ["1m", "5m", "15m", "1h"]
workers = 2

[player]
cooldown_bars = 2
min_voters = 3
min_margin = 0.05
min_confidence = 0.01
tp_min_fraction = 0.002
tp_max_fraction = 0.004
sl_min_fraction = 0.002
sl_max_fraction = 0.004

[risk]
max_positions = 2
stale_after_intervals = 5.0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
    out["CASINO_DATA_DIR"] = str(SHARED / "data")
    out.update(extra)
    return out


def write_config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "casino.toml"
    path.write_text(FAST_CONFIG + extra)
    return path


def start_session(tmp: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd=tmp, env=env(**(extra_env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def session_dir(tmp: Path) -> Path:
    dirs = sorted((tmp / "sessions").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def report(tmp: Path) -> dict[str, Any]:
    return json.loads((session_dir(tmp) / "report.json").read_text())


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ready(port: int, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"session exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        try:
            if get(f"http://127.0.0.1:{port}/ready", 1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("session never became ready")


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def status(port: int) -> dict[str, Any]:
    return json.loads(get(f"http://127.0.0.1:{port}/status")[1])


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout_s: float = 90.0) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err
