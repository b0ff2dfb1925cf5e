"""VoteBook (heap-indexed) agrees with a plain bar-by-bar reference on real BTCUSDT 1m candles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.history import load_candles
from core.vote_book import OpenVote, Outcome, VoteBook

Bars = list[tuple[int, float, float, float, float]]  # open_ms, o, h, l, c


@pytest.fixture(scope="module")
def bars(data_dir: Path) -> Bars:
    s = load_candles(data_dir / "futures-2023" / "BTCUSDT-1m.csv.gz")
    start = 20_000  # a stretch from early August 2023
    return [(int(s.open_time[i]), float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
            for i in range(start, start + 400)]


def reference(vote: OpenVote, bars: Bars) -> tuple[Outcome, float, int] | None:
    """The rules written the slow, obvious way: walk the bars after the vote one by one."""
    for open_ms, o, h, low, c in bars:
        end_ms = open_ms + 60_000
        if open_ms < vote.entry_ms:
            continue
        if open_ms >= vote.expires_ms:
            return Outcome.EXPIRED, vote.direction * (o - vote.entry_price) / vote.entry_price / vote.sl_fraction, vote.expires_ms
        sl_hit = low <= vote.sl_price if vote.direction > 0 else h >= vote.sl_price
        tp_hit = h >= vote.tp_price if vote.direction > 0 else low <= vote.tp_price
        if sl_hit:
            return Outcome.LOSS, -1.0, end_ms
        if tp_hit:
            return Outcome.WIN, vote.tp_fraction / vote.sl_fraction, end_ms
        if end_ms >= vote.expires_ms:
            return Outcome.EXPIRED, vote.direction * (c - vote.entry_price) / vote.entry_price / vote.sl_fraction, end_ms
    return None


VOTES = st.lists(st.tuples(
    st.integers(0, 300),                       # entry bar index
    st.sampled_from([1, -1]),                  # direction
    st.sampled_from([0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.003, 0.01]),  # tp
    st.sampled_from([0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.003, 0.01]),  # sl
    st.integers(1, 90),                        # horizon in 1m bars
), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(specs=VOTES, gap=st.booleans())
def test_heap_book_matches_reference(bars: Bars, specs: list[tuple[int, int, float, float, int]], gap: bool) -> None:
    feed = [b for k, b in enumerate(bars) if not (gap and 150 <= k < 175)]  # optionally drop 25 bars
    book = VoteBook()
    votes = []
    for i, (k, direction, tp, sl, horizon) in enumerate(specs):
        entry_ms = bars[k][0] + 60_000
        vote = OpenVote(f"v{i}", "BTCUSDT", direction, entry_ms, bars[k][4], tp, sl, entry_ms + horizon * 60_000)
        votes.append(vote)
    got: dict[str, tuple[Outcome, float, int]] = {}
    pending = sorted(votes, key=lambda v: v.entry_ms)
    for open_ms, o, h, low, c in feed:
        while pending and pending[0].entry_ms <= open_ms:  # a vote is made before the next bar is judged
            book.add(pending.pop(0))
        for j in book.judge(open_ms, open_ms + 60_000, o, h, low, c):
            got[j.vote.key] = (j.outcome, j.r, j.at_ms)
    for vote in votes:
        want = reference(vote, feed)
        if want is None:
            assert vote.key not in got
        else:
            assert got[vote.key][0] is want[0] and got[vote.key][2] == want[2]
            assert got[vote.key][1] == pytest.approx(want[1])
    assert len(book) == sum(1 for v in votes if v.key not in got)


def test_votes_made_after_a_candle_opened_are_not_judged_by_it(bars: Bars) -> None:
    book = VoteBook()
    open_ms, o, h, low, c = bars[10]
    book.add(OpenVote("late", "BTCUSDT", 1, open_ms + 60_000, c, 0.00001, 0.00001, open_ms + 600_000))
    assert book.judge(open_ms, open_ms + 60_000, o, h, low, c) == []  # its own bar replayed
    assert len(book) == 1
    nxt = bars[11]
    assert len(book.judge(nxt[0], nxt[0] + 60_000, *nxt[1:])) == 1
