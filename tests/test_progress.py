"""The replay progress bar: one redrawn line (a real carriage return) with bars, percent, rate and ETA."""

from __future__ import annotations

from core.progress import progress_line


def test_progress_line_redraws_one_line_with_rate_and_eta() -> None:
    line = progress_line(250, 1_000, 2.0, "trades")
    assert line.startswith("\r[") and "\n" not in line
    assert "250/1,000 bars" in line and " 25.0 %" in line
    assert "125 bars/s" in line and "ETA 6 s" in line and "(trades)" in line
    assert line.count("#") == 7 and line.count(".") >= 23


def test_progress_line_without_a_total_shows_no_eta() -> None:
    line = progress_line(10, 0, 1.0)
    assert "0.0 %" in line and "ETA nan s" in line
