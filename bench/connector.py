"""Connector benchmark: decoded websocket frames per second on the recorded real tick files.

Prints one JSON object per figure: {"bench","metric","value","unit","runs"} (medians of runs).
``--quick`` keeps it well under a minute. The signed-order round-trip figure needs the simulated
exchange and is added with the loopback suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchanges.binance.frames import MarketDecoder  # noqa: E402

SHARED = Path(os.environ.get("CASINO_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


def _frames(limit: int | None) -> list[bytes]:
    frames: list[bytes] = []
    for path in sorted((SHARED / "data" / "ticks").glob("*.gz")):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                frame = line.partition(b" ")[2]
                if frame.startswith(b'{"stream"'):
                    frames.append(frame)
    return frames[:limit] if limit else frames


def _emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(json.dumps({"bench": "connector", "metric": metric, "value": round(value, 1), "unit": unit, "runs": runs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs (< 1 min)")
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    frames = _frames(60_000 if args.quick else None)
    rates: list[float] = []
    for _ in range(runs):
        decoder = MarketDecoder("bench")
        t0 = time.perf_counter()
        for frame in frames:
            decoder.decode(frame)
        elapsed = time.perf_counter() - t0
        if decoder.malformed:
            raise SystemExit(f"{decoder.malformed} frames failed to decode")
        rates.append(len(frames) / elapsed)
    _emit("decoded_frames_per_s", statistics.median(rates), "frames/s", runs)
    _emit("decode_us_per_frame", 1e6 / statistics.median(rates), "us/frame", runs)


if __name__ == "__main__":
    main()
