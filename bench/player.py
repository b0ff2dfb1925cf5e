"""Benchmark the decision path: decide(), the Player adapter, the tracker on real candles, the risk gate.

    python bench/player.py            # 5 runs each
    python bench/player.py --quick    # 3 short runs (well under a minute)

Prints one JSON object per figure: {"bench", "metric", "value", "unit", "runs"} (medians).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import FakeClock  # noqa: E402
from core.events import SensorReading  # noqa: E402
from core.history import find_data_dir, load_candles  # noqa: E402
from core.player import Bar, Player, PlayerParams, decide  # noqa: E402
from core.risk import EntryIntent, Exposure, RiskGate, RiskParams  # noqa: E402
from core.sensor_tracker import SensorTracker, TrackerParams, sensor_key  # noqa: E402
from core.types import Candle, Side, Timeframe  # noqa: E402

SENSORS = 40
T0 = 1_689_678_780_000


def readings_for(open_ms: int, rng: random.Random, symbol: str = "BTCUSDT") -> list[SensorReading]:
    out = [SensorReading(f"s{i}", symbol, Timeframe.M1, open_ms, rng.uniform(-1, 1), 0.015, 0.01)
           for i in range(SENSORS)]
    h1 = open_ms + 60_000 - (open_ms + 60_000) % 3_600_000 - 3_600_000
    out += [SensorReading(f"c{i}", symbol, Timeframe.H1, h1, rng.uniform(-1, 1), 0.1, 0.05, True) for i in range(3)]
    return out


def median_rate(runs: int, work: Callable[[], int]) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        n = work()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def emit(metric: str, value: float, unit: str, runs: int) -> None:
    print(json.dumps({"bench": "player", "metric": metric, "value": round(value, 1), "unit": unit, "runs": runs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs, n = (3, 2_000) if args.quick else (5, 10_000)
    rng = random.Random(7)
    bar = Bar("BTCUSDT", Timeframe.M1, T0, Decimal("30000"))
    batch = readings_for(T0, rng)
    scores = {sensor_key(f"s{i}", Timeframe.M1): rng.uniform(0.3, 0.9) for i in range(SENSORS)}
    params = PlayerParams(cooldown_bars=0, min_margin=0.0, min_confidence=0.0)

    emit("decide_per_s", median_rate(runs, lambda: [decide(bar, batch, scores, params) for _ in range(n)] and n),
         "decisions/s", runs)

    price = Decimal("30000")
    bars = [(Candle("BTCUSDT", Timeframe.M1, T0 + k * 60_000, price, price, price, price, Decimal(1)),
             readings_for(T0 + k * 60_000, rng)) for k in range(n)]

    def adapter() -> int:
        player = Player(params, ["BTCUSDT"], clock=FakeClock(T0))
        for candle, readings in bars:
            player.open_bar(candle)
            player.add_readings(readings)
            player.close_bar("BTCUSDT", scores)
        return n
    emit("player_bar_per_s", median_rate(runs, adapter), "bars/s", runs)

    series = load_candles(find_data_dir() / "futures-2023" / "BTCUSDT-1m.csv.gz")
    count = min(len(series), n)
    candles = [Candle("BTCUSDT", Timeframe.M1, int(series.open_time[i]), Decimal(str(series.open[i])),
                      Decimal(str(series.high[i])), Decimal(str(series.low[i])), Decimal(str(series.close[i])),
                      Decimal(str(series.volume[i]))) for i in range(count)]
    per_bar = [readings_for(c.open_time_ms, rng) for c in candles]

    def tracker() -> int:
        t = SensorTracker(TrackerParams(horizon_bars=60))
        for c, rs in zip(candles, per_bar, strict=True):
            t.on_candle(c)
            t.record(rs, price=c.close, at_ms=c.open_time_ms + 60_000)
        return count
    emit("tracker_bar_per_s", median_rate(runs, tracker), f"bars/s ({SENSORS} sensors, 60-bar horizon)", runs)

    clock = FakeClock(T0 + 60_000)
    gate = RiskGate(RiskParams(), clock, allowlist=["BTCUSDT"], start_equity=Decimal("10000"))
    gate.on_candle(Candle("BTCUSDT", Timeframe.M1, T0, *(Decimal(1),) * 5))
    intent = EntryIntent("BTCUSDT", Side.BUY, Decimal("500"))
    exposure = Exposure(Decimal("10000"), {"ETHUSDT": Decimal("1000")})
    emit("risk_check_per_s", median_rate(runs, lambda: [gate.check_entry(intent, exposure) for _ in range(n)] and n),
         "checks/s", runs)


if __name__ == "__main__":
    main()
