"""The one-line progress bar replays draw on a terminal: bars done, percent, bars/s, ETA."""

from __future__ import annotations

import math
import sys

WIDTH = 30


def progress_line(done: int, total: int, elapsed_s: float, note: str = "") -> str:
    """The bar for ``done`` of ``total`` bars after ``elapsed_s`` seconds, starting with a carriage
    return so each call redraws the same line (``note`` is appended, e.g. the current phase)."""
    rate = done / max(elapsed_s, 1e-9)
    eta = (total - done) / rate if rate > 0 and total else math.nan
    fraction = min(1.0, done / total) if total else 0.0
    filled = int(WIDTH * fraction)
    tail = f" ({note})" if note else ""
    return (f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {done:,}/{total:,} bars {100 * fraction:5.1f} %  "
            f"{rate:,.0f} bars/s  ETA {eta:,.0f} s{tail} ")


def draw(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()
