"""Connector benchmark: frame decoding and signed order round trips against the simulator.

1. Decoded websocket frames per second on the recorded real tick files (../shared/data/ticks).
2. Signed order round trips through ``BinanceFutures`` against ``SimServer`` on loopback, wired
   as paper mode wires it (the sim's URLs, HMAC key/secret and clock): each round trip is one
   HMAC-signed request answered by the venue — a resting LIMIT placed, then cancelled — so the
   figure covers rounding by SymbolRules, the limiter, the breaker, signing, aiohttp, the
   simulator's verification and matching, and decoding into kernel records. Sequential, one
   connection; the sim's rate limits are raised for the run (the connector reads them from
   exchangeInfo), so the figure is the round trip, not Binance's order quota.

Prints one JSON object per figure: {"bench","metric","value","unit","runs"} (medians of runs).
``--quick`` keeps it well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.secrets import Secrets  # noqa: E402
from config.settings import ExchangeSettings  # noqa: E402
from core.types import OrderRequest, OrderStatus, OrderType, Side, TimeInForce  # noqa: E402
from exchanges.binance.client import BinanceFutures  # noqa: E402
from exchanges.binance.frames import MarketDecoder  # noqa: E402
from exchanges.binance.urls import BinanceUrls  # noqa: E402
from exchanges.sim.feed import load_symbol_data  # noqa: E402
from exchanges.sim.limits import RateLimiter as SimRateLimiter  # noqa: E402
from exchanges.sim.server import SimServer  # noqa: E402
from exchanges.sim.venue import Venue  # noqa: E402

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


def _emit(metric: str, value: float, unit: str, runs: int, digits: int = 1) -> None:
    print(json.dumps({"bench": "connector", "metric": metric, "value": round(value, digits), "unit": unit,
                      "runs": runs}), flush=True)


def bench_decode(quick: bool) -> None:
    runs = 3 if quick else 7
    frames = _frames(60_000 if quick else None)
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


async def _order_run(venue: Venue, round_trips: int) -> tuple[float, list[float]]:
    """(round trips per second, per-request latencies in ms) of one run."""
    huge = 10**9
    server = SimServer(venue, api_key="bench-key", api_secret="bench-secret",
                       limiter=SimRateLimiter(weight_limit=huge, orders_10s_limit=huge, orders_1m_limit=huge))
    await server.start()
    client = BinanceFutures(BinanceUrls(rest=server.rest_url, ws=server.ws_url), clock=server.clock,
                            settings=ExchangeSettings(), secrets=Secrets(api_key="bench-key", api_secret="bench-secret"))
    try:
        await client.start()
        mark = (await client.mark_price("BTCUSDT")).mark_price
        price = (mark * Decimal("0.9")).quantize(Decimal("0.1"))
        latencies: list[float] = []
        t0 = time.perf_counter()
        for i in range(round_trips // 2):
            cid = f"bench-{i}"
            start = time.perf_counter()
            order = await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.010"), cid,
                                                          price=price, time_in_force=TimeInForce.GTC))
            placed = time.perf_counter()
            canceled = await client.cancel_order("BTCUSDT", order_id=order.order_id)
            done = time.perf_counter()
            if order.status is not OrderStatus.NEW or canceled.status is not OrderStatus.CANCELED:
                raise SystemExit(f"unexpected order states {order.status} / {canceled.status}")
            latencies += [(placed - start) * 1000, (done - placed) * 1000]
        elapsed = time.perf_counter() - t0
        return len(latencies) / elapsed, latencies
    finally:
        await client.close()
        await server.stop()


def bench_orders(quick: bool) -> None:
    runs = 3 if quick else 5
    round_trips = 600 if quick else 4000
    btc = load_symbol_data(SHARED / "data" / "futures-2023", "BTCUSDT")
    rates, p50s, p99s = [], [], []
    for _ in range(runs):
        rate, latencies = asyncio.run(_order_run(Venue({"BTCUSDT": btc}, warmup_bars=10), round_trips))
        latencies.sort()
        rates.append(rate)
        p50s.append(latencies[len(latencies) // 2])
        p99s.append(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])
    _emit("signed_order_round_trips_per_s", statistics.median(rates), "requests/s", runs)
    _emit("signed_order_round_trip_p50_ms", statistics.median(p50s), "ms", runs, digits=3)
    _emit("signed_order_round_trip_p99_ms", statistics.median(p99s), "ms", runs, digits=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer frames, orders and runs (< 1 min)")
    args = parser.parse_args()
    bench_decode(args.quick)
    bench_orders(args.quick)


if __name__ == "__main__":
    main()
