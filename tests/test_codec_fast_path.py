"""``codec.encode``'s shortcut for plain container items gives exactly the plain recursive result.

Snapshots are encoded on the event loop after every bracket transition; most of their nodes are
plain scalars in lists (the tracker's open votes and outcomes), which ``encode`` now passes
through without a recursive call. The reference below is the recursion written out plainly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StateError
from core.types import Side, Timeframe
from state import codec


@dataclasses.dataclass(frozen=True, slots=True)
class _Rec:
    side: Side
    price: Decimal
    values: tuple[float, ...]


def reference_encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)) and not isinstance(value, Enum):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise StateError("non-finite Decimal")
        return str(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise StateError("non-finite float")
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: reference_encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k.name if isinstance(k, Enum) else str(k) if not isinstance(k, str) else k: reference_encode(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [reference_encode(v) for v in value]
    raise StateError(f"cannot encode {type(value).__name__}")


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.floats(),
                    st.sampled_from(list(Side) + list(Timeframe)),
                    st.decimals(allow_nan=True, allow_infinity=True, places=4))
records = st.builds(_Rec, st.sampled_from(list(Side)), st.decimals(allow_nan=False, allow_infinity=False, places=2),
                    st.tuples(st.floats(allow_nan=False, allow_infinity=False)))
trees = st.recursive(scalars | records, lambda children: st.lists(children, max_size=6)
                     | st.tuples(children, children)
                     | st.dictionaries(st.text(max_size=4) | st.sampled_from(list(Side)), children, max_size=4),
                     max_leaves=40)


def outcome(fn: Any, value: Any) -> Any:
    try:
        return ("ok", fn(value))
    except StateError:
        return ("error",)


@settings(max_examples=300, deadline=None)
@given(tree=trees)
def test_encode_equals_the_plain_recursion(tree: Any) -> None:
    got, want = outcome(codec.encode, tree), outcome(reference_encode, tree)
    assert got == want or (got[0] == want[0] == "ok" and codec.dumps_plain(got[1]) == codec.dumps_plain(want[1]))


def test_non_finite_floats_inside_lists_are_still_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(StateError):
            codec.encode({"open": [["k", "BTCUSDT", 1, 0, 30_000.0, bad]]})


def test_an_encoded_section_is_written_as_encode_would_write_it() -> None:
    tracker_like = {"open": [["mom@1m", "BTCUSDT", 1, 1_700_000_060_000, 30_001.9, 0.0015, 0.001, 1_700_000_960_000]],
                    "side": Side.BUY, "price": Decimal("30001.90")}
    document = {"engine": {"tracker": codec.Encoded(tracker_like), "risk": {"state": Side.SELL}}}
    plain = {"engine": {"tracker": tracker_like, "risk": {"state": Side.SELL}}}
    assert codec.dumps_plain(codec.encode(document)) == codec.dumps_plain(codec.encode(plain))
    with pytest.raises(StateError):  # refused when it is made, not later at a save
        codec.Encoded({"r": [math.inf]})


def test_a_snapshot_with_an_encoded_section_is_the_snapshot_of_the_plain_one(tmp_path: Any) -> None:
    # The section is held as JSON bytes: the file written must be byte for byte the one the plain
    # document gives, and it must load back (checksum verified) to the plain document's state.
    from state.snapshot import FileSnapshotStore, read_snapshot

    tracker_like = {
        "version": 1, "now_ms": 1_700_000_060_000,
        "history": {"mom@1m": {"outcomes": [[1.5, True], [-1.0, False], [0.1 + 0.2, True]], "last_win_ms": None}},
        "open": [["mom@1m", "BTCUSDT", -1, 1_700_000_060_000, 30_001.9, 0.0015, 0.001, 1_700_000_960_000]],
    }
    plain = {"engine": {"tracker": tracker_like, "risk": {"state": Side.SELL}}}
    cached = {"engine": {"tracker": codec.Encoded(tracker_like), "risk": {"state": Side.SELL}}}
    a = FileSnapshotStore(tmp_path / "a").save(plain)
    b = FileSnapshotStore(tmp_path / "b").save(cached)
    assert a.read_bytes() == b.read_bytes()
    assert read_snapshot(b) == read_snapshot(a)
    assert read_snapshot(b)["state"]["engine"]["tracker"] == tracker_like
