"""Benchmark of the simulated exchange.

1. In-process engine: 50 symbols, each with an open position protected by a resting bracket
   (closePosition STOP_MARKET + TAKE_PROFIT_MARKET algo orders), replayed bar by bar through
   ``Venue.advance_to``. The 50 symbols replay the real 1m candles of the futures-2023 dataset
   (its 7 symbols reused under 50 names, so every symbol has its own book and position).
   Figures: path points per second (one point = one price update of one symbol, running
   triggers, resting fills and the liquidation check) and symbol-bars per second.
2. Server: signed order round trips over loopback (HMAC-signed POST of a resting LIMIT order
   then its DELETE), one client connection, sequential; rate limits raised for the run.

Usage: ``python bench/sim_engine.py [--quick]`` — one JSON object per figure per line,
medians of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.history import find_data_dir  # noqa: E402
from core.types import OrderType, Side, WorkingType  # noqa: E402
from exchanges.sim.feed import SymbolData, load_symbol_data  # noqa: E402
from exchanges.sim.limits import RateLimiter  # noqa: E402
from exchanges.sim.server import SimServer  # noqa: E402
from exchanges.sim.venue import Venue, VenueConfig  # noqa: E402

SOURCES = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


def fifty_symbols(loaded: dict[str, SymbolData]) -> dict[str, SymbolData]:
    out = {}
    for i in range(50):
        src = loaded[SOURCES[i % len(SOURCES)]]
        name = f"S{i:02d}{SOURCES[i % len(SOURCES)]}"
        out[name] = replace(src, symbol=name, _resampled={})
    return out


def bracket_venue(data: dict[str, SymbolData], steps: int) -> Venue:
    venue = Venue(data, config=VenueConfig(path_steps=steps, intrabar_events=False), warmup_bars=10)
    eng = venue.engine
    for sym, spec in venue.specs.items():
        price = eng.last_price(sym)
        assert price is not None
        qty = spec.rules.min_qty_for_notional(price) * 2
        eng.place_order(symbol=sym, side=Side.BUY, order_type=OrderType.MARKET, quantity=qty, now_ms=venue.now_ms)
        tick = spec.rules.tick_size
        for kind, factor in ((OrderType.STOP_MARKET, Decimal("0.8")), (OrderType.TAKE_PROFIT_MARKET, Decimal("1.25"))):
            trig = (price * factor / tick).to_integral_value() * tick
            eng.place_algo(symbol=sym, side=Side.SELL, order_type=kind, now_ms=venue.now_ms, trigger_price=trig,
                           close_position=True, working_type=WorkingType.MARK_PRICE)
    eng.drain()
    return venue


def bench_engine(data: dict[str, SymbolData], bars: int, runs: int, steps: int) -> list[dict[str, object]]:
    point_rates, bar_rates = [], []
    for _ in range(runs):
        venue = bracket_venue(data, steps)
        start = time.perf_counter()
        venue.advance_to(venue.now_ms + bars * 60_000)
        elapsed = time.perf_counter() - start
        symbol_bars = bars * len(data)
        point_rates.append(symbol_bars * steps / elapsed)
        bar_rates.append(symbol_bars / elapsed)
    return [
        {"bench": "sim_engine", "metric": "path_points_per_s_50_symbols_bracketed",
         "value": round(statistics.median(point_rates), 1), "unit": "points/s", "runs": runs},
        {"bench": "sim_engine", "metric": "symbol_bars_per_s_50_symbols_bracketed",
         "value": round(statistics.median(bar_rates), 1), "unit": "bars/s", "runs": runs},
    ]


async def bench_server(btc: SymbolData, requests: int, runs: int) -> list[dict[str, object]]:
    from tests.sim_client import BinanceTestClient

    rates = []
    for _ in range(runs):
        limiter = RateLimiter(weight_limit=10**9, orders_10s_limit=10**9, orders_1m_limit=10**9)
        server = SimServer(Venue({"BTCUSDT": btc}, warmup_bars=10), api_key="k", api_secret="s", limiter=limiter)
        await server.start()
        client = BinanceTestClient(server.rest_url, "k", "s")
        try:
            # Wall-clock timestamps (offset 0): the manual clock stands still during the run,
            # and the server accepts timestamps in time against either clock (auth.py).
            price = server.venue.engine.last_price("BTCUSDT")
            assert price is not None
            limit_px = str((price * Decimal("0.9")).quantize(Decimal("0.1")))
            start = time.perf_counter()
            for i in range(requests // 2):
                status, body = await client.request("POST", "/fapi/v1/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.010", "price": limit_px, "newClientOrderId": f"b{i}"}, signed=True)
                assert status == 200, body
                status, body = await client.request("DELETE", "/fapi/v1/order", {
                    "symbol": "BTCUSDT", "orderId": body["orderId"]}, signed=True)
                assert status == 200, body
            rates.append((requests // 2 * 2) / (time.perf_counter() - start))
        finally:
            await client.close()
            await server.stop()
    return [{"bench": "sim_engine", "metric": "signed_order_requests_per_s", "value": round(statistics.median(rates), 1),
             "unit": "requests/s", "runs": runs}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (well under a minute)")
    parser.add_argument("--data-dir", help="recorded data folder (default: ../shared/data)")
    args = parser.parse_args()
    folder = find_data_dir(args.data_dir) / "futures-2023"
    loaded = {s: load_symbol_data(folder, s) for s in SOURCES}
    runs = 3 if args.quick else 5
    for line in bench_engine(fifty_symbols(loaded), bars=60 if args.quick else 600, runs=runs, steps=4):
        print(json.dumps(line), flush=True)
    for line in asyncio.run(bench_server(loaded["BTCUSDT"], requests=200 if args.quick else 2000, runs=runs)):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
