"""The report's price series stay bounded and evenly spaced however long a session runs."""

from __future__ import annotations

import tracemalloc
from decimal import Decimal

from core.report import MAX_SERIES_POINTS, SessionRecord, build_report

MINUTE_MS = 60_000


def _record() -> SessionRecord:
    return SessionRecord("s", "replay", "hash", ["BTCUSDT"], 0, Decimal("1000"))


def test_a_long_session_keeps_a_bounded_evenly_spaced_price_series() -> None:
    record = _record()
    samples = 23 * MAX_SERIES_POINTS + 17  # e.g. 32 days of one-minute samples
    for i in range(samples):
        record.sample_price("BTCUSDT", (i + 1) * MINUTE_MS, 100.0 + i)
    points = record.prices["BTCUSDT"]
    assert MAX_SERIES_POINTS // 2 <= len(points) < MAX_SERIES_POINTS
    assert points[0] == (MINUTE_MS, 100.0)  # the session's first price is kept
    gaps = {b[0] - a[0] for a, b in zip(points, points[1:], strict=False)}
    assert len(gaps) == 1  # evenly spaced
    gap = gaps.pop()
    assert samples * MINUTE_MS - points[-1][0] < gap  # and up to date: the newest point is within one gap
    assert all(price == 100.0 + t / MINUTE_MS - 1 for t, price in points)  # each point is a real sample
    chart = build_report(record)["series"]["prices"]["BTCUSDT"]
    assert len(chart) <= MAX_SERIES_POINTS and tuple(chart[0]) == (MINUTE_MS, 100.0)

def test_a_short_session_keeps_every_sample() -> None:
    record = _record()
    for i in range(MAX_SERIES_POINTS - 1):
        record.sample_price("BTCUSDT", i * MINUTE_MS, float(i))
    assert record.prices["BTCUSDT"] == [(i * MINUTE_MS, float(i)) for i in range(MAX_SERIES_POINTS - 1)]


def test_a_full_series_costs_about_16_bytes_a_point() -> None:
    """50 symbols' full series stay near 1.6 MB (a list of (int, float) tuples took ~120 B a point)."""
    record = _record()
    record.sample_price("BTCUSDT", 0, 1.0)  # the dict entry and the series object itself
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, MAX_SERIES_POINTS - 1):
            record.sample_price("BTCUSDT", i * MINUTE_MS, 100.0 + i)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(record.prices["BTCUSDT"]) == MAX_SERIES_POINTS - 1
    assert grown < 24 * MAX_SERIES_POINTS, grown


def test_the_equity_curve_is_kept_typed_and_reported_as_a_list_would_be() -> None:
    # Every sample is kept (Sharpe and Sortino are computed on the curve); only its storage
    # changed: the report equals the one built from a plain list of tuples.
    typed, plain = _record(), _record()
    plain.equity = []
    for i in range(3 * MAX_SERIES_POINTS + 5):
        point = (i * MINUTE_MS + (i % 3) * 7, 1000.0 + ((i * 37) % 101 - 50) * 0.37)
        typed.equity.append(point)
        plain.equity.append(point)
    assert len(typed.equity) == 3 * MAX_SERIES_POINTS + 5 and list(typed.equity) == plain.equity
    assert build_report(typed) == build_report(plain)
