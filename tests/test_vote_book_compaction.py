"""VoteBook memory stays bounded by its live votes, and compacting never changes a verdict.

Lazy heap removal used to keep an entry for every vote ever made once the market moved away
from their targets (found by the 48 h soak: the engine's RSS grew with the session). Real
BTCUSDT 1m candles drive both tests.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from core.vote_book import COMPACT_SLACK, DEAD_FRACTION, ENTRIES_PER_VOTE, OpenVote, Outcome, VoteBook
from test_tracker_vote_book import VOTES, Bars, bars, reference  # noqa: F401 - bars is a fixture

HORIZONS = (60, 300, 900, 3600)  # bars: 1m … 1h-timeframe horizons, as the tracker makes them


def test_heaps_stay_bounded_under_the_trackers_churn(bars: Bars) -> None:
    """Votes every bar, a cap that drops the oldest (the tracker's max_open_votes), and long
    horizons that keep live votes far from the market: the heaps follow the live votes."""
    book = VoteBook()
    cap = 600
    made = 0
    span = len(bars) * 60_000
    for lap in range(25):  # the 400 real bars again and again, later each time: 10,000 bars in all
        shift = lap * span
        for k, (open_ms, _o, _h, _low, c) in enumerate(bars):
            t = open_ms + shift + 60_000  # made at the bar's close
            for i, horizon in enumerate(HORIZONS):
                for direction in (1, -1):
                    fraction = 0.002 * (i + 1)
                    book.add(OpenVote(f"v{made}", "BTCUSDT", direction, t, c, fraction, fraction,
                                      t + horizon * 60_000))
                    made += 1
            while len(book) > cap:
                book.drop_oldest()
            if k + 1 < len(bars):
                nxt_open, *ohlc = bars[k + 1]
                book.judge(nxt_open + shift, nxt_open + shift + 60_000, *ohlc)
            live = ENTRIES_PER_VOTE * len(book)
            assert book.heap_entries <= live + live // DEAD_FRACTION + COMPACT_SLACK + 1, (
                made, len(book), book.heap_entries)
    assert made == 25 * len(bars) * len(HORIZONS) * 2


@settings(max_examples=60, deadline=None)
@given(specs=VOTES)
def test_a_book_that_compacts_all_the_time_judges_like_the_reference(
        bars: Bars, specs: list[tuple[int, int, float, float, int]]) -> None:  # noqa: F811
    book = VoteBook(compact_slack=0)  # rebuilt as soon as dead entries exceed a quarter of the live ones
    votes = []
    for i, (k, direction, tp, sl, horizon) in enumerate(specs):
        entry_ms = bars[k][0] + 60_000
        votes.append(OpenVote(f"v{i}", "BTCUSDT", direction, entry_ms, bars[k][4], tp, sl,
                              entry_ms + horizon * 60_000))
    got: dict[str, tuple[Outcome, float, int]] = {}
    pending = sorted(votes, key=lambda v: v.entry_ms)
    for open_ms, o, h, low, c in bars:
        while pending and pending[0].entry_ms <= open_ms:
            book.add(pending.pop(0))
        for j in book.judge(open_ms, open_ms + 60_000, o, h, low, c):
            got[j.vote.key] = (j.outcome, j.r, j.at_ms)
        live = ENTRIES_PER_VOTE * len(book)
        assert book.heap_entries <= live + live // DEAD_FRACTION
    for vote in votes:
        want = reference(vote, bars)
        if want is None:
            assert vote.key not in got
        else:
            assert got[vote.key][0] is want[0] and got[vote.key][2] == want[2]
            assert got[vote.key][1] == pytest.approx(want[1])
