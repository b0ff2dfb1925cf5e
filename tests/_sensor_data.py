"""Real candle slices shared by the sensor tests (read in place from ../shared/data)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from core.history import load_candles
from sensors.base import Bars

# (dataset file, first row, rows): a quiet BTC month, a jumpy low-priced coin, spot 5m in 2021
SLICES = (
    ("futures-2023/BTCUSDT-1m.csv.gz", 10_000, 2_500),
    ("futures-2023/DOGEUSDT-1m.csv.gz", 20_000, 2_500),
    ("spot-2021/SOLUSDT-5m.csv.gz", 40_000, 2_500),
)


@lru_cache(maxsize=None)
def bars(data_dir: Path, name: str, start: int, rows: int) -> Bars:
    s = load_candles(data_dir / name).slice(start, start + rows)
    return Bars(s.open.copy(), s.high.copy(), s.low.copy(), s.close.copy(), s.volume.copy())
