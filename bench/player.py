"""Benchmark the decision path: decide(), the Player adapter, the tracker on real candles, the risk gate.

``decide_per_s`` and ``player_bar_per_s``: 40 voters + 3 context readings, every bar decided.
``plan_bar_per_s``: one symbol's bar the way the engine hands it over with the default plan —
67 voters on each of 1m/5m/15m/1h and 5 context sensors on 1h (273 readings), the higher
timeframes' tuples handed over again on every 1m bar until they close, scores read from a
tracker's lazy view — and ``plan_burst_50_ms``: 50 such symbols one after the other, the
player's share of a 50-symbol burst.

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


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


PLAN_TFS = (Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1)


def plan_feed(symbols: int, bars: int) -> list[tuple[Candle, list[tuple[SensorReading, ...]]]]:
    """``bars`` 1m bars of ``symbols`` symbols, each with the default plan's 273 readings as the
    engine holds them (a timeframe's tuple is the same object until that timeframe closes)."""
    rng = random.Random(11)
    names = [f"p{i}" for i in range(67)]
    held: dict[tuple[str, Timeframe], tuple[SensorReading, ...]] = {}
    price = Decimal("30000")
    feed = []
    for b in range(bars):
        open_ms = T0 + b * 60_000
        close = open_ms + 60_000
        for k in range(symbols):
            symbol = f"S{k:02d}USDT"
            for tf in PLAN_TFS:
                tf_open = close - close % tf.ms - tf.ms
                current = held.get((symbol, tf))
                if current is None or current[0].open_time_ms != tf_open:  # the timeframe closed: new readings
                    batch = [SensorReading(n, symbol, tf, tf_open, rng.choice((-1.0, -0.4, 0.0, 0.0, 0.3, 1.0)),
                                           0.015, 0.01) for n in names]
                    if tf is Timeframe.H1:
                        batch += [SensorReading(f"ctx{i}", symbol, tf, tf_open, rng.uniform(-1, 1), 0.1, 0.05, True)
                                  for i in range(5)]
                    held[(symbol, tf)] = tuple(batch)
            feed.append((Candle(symbol, Timeframe.M1, open_ms, price, price, price, price, Decimal(1)),
                         [held[(symbol, tf)] for tf in PLAN_TFS]))
    return feed


def plan_bars(feed: list[tuple[Candle, list[tuple[SensorReading, ...]]]], symbols: int) -> int:
    """The player's work on ``feed`` with the default thresholds (decisions and skips mixed)."""
    tracker = SensorTracker(TrackerParams())
    player = Player(PlayerParams(), [f"S{k:02d}USDT" for k in range(symbols)], clock=FakeClock(T0))
    for candle, batches in feed:
        player.open_bar(candle)
        for batch in batches:
            player.add_readings(batch)
        player.close_bar(candle.symbol, tracker.score_view())
    return len(feed)


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

    one = plan_feed(1, n // 4)
    emit("plan_bar_per_s", median_rate(runs, lambda: plan_bars(one, 1)), "bars/s (273 readings)", runs)
    fifty = plan_feed(50, 20)
    burst = statistics.median(timed(lambda: plan_bars(fifty, 50)) / 20 for _ in range(runs))
    emit("plan_burst_50_ms", burst * 1000, "ms per 50-symbol bar", runs)

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
