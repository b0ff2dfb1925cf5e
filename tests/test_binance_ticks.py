"""The recorded real Binance frames (../shared/data/ticks/*.gz) stream through the decoder cleanly."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from exchanges.binance.frames import BookTicker, DepthUpdate, MarketDecoder, Trade


@pytest.mark.parametrize("name", ["btcusdt_20240808.gz", "ethusdt_20240808.gz"])
def test_recorded_frames_decode_without_error(data_dir: Path, name: str) -> None:
    decoder = MarketDecoder(f"ticks-{name}")
    counts = {BookTicker: 0, DepthUpdate: 0, Trade: 0}
    stream_frames = other_lines = 0
    last_trade_id = 0
    with gzip.open(data_dir / "ticks" / name, "rb") as fh:
        for line in fh:
            _, _, frame = line.partition(b" ")
            if frame.startswith(b'{"stream"'):
                stream_frames += 1
            else:
                other_lines += 1  # the REST depth snapshot recorded alongside
            item = decoder.decode(frame)
            if item is not None:
                counts[type(item)] += 1
                if isinstance(item, Trade):
                    assert item.price > 0 and item.quantity > 0
                    assert item.trade_id > last_trade_id  # recorded in order
                    last_trade_id = item.trade_id
                if isinstance(item, BookTicker):
                    assert item.bid <= item.ask
    assert decoder.malformed == 0
    assert sum(counts.values()) == stream_frames
    assert decoder.unknown == other_lines <= 1
    assert all(counts.values())  # all three kinds present
