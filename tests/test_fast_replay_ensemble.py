"""``replay --fast`` against the event-driven ``replay`` with the default ensemble (every sensor).

Every registered sensor on 1m/5m/15m/1h votes; the tracker pools hundreds of sensor keys and
the consensus weighs them all. Half a day of real BTCUSDT data after the warm-up keeps the
event-driven side short; the comparison is the same as tests/test_fast_replay_parity.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fast_replay_helpers import assert_same_trades, fast_report, run_engine, short_dataset
from tests.session_helpers import FAST_CONFIG

pytestmark = pytest.mark.timeout(240)

ENSEMBLE = FAST_CONFIG.replace('symbols = ["BTCUSDT", "ETHUSDT"]', 'symbols = ["BTCUSDT"]').replace(
    'dataset = "futures-2023"', 'dataset = "short"') + "\n[metrics]\nenabled = false\n"


def test_default_ensemble_same_trades(tmp_path: Path, data_dir: Path) -> None:
    short_dataset(data_dir / "futures-2023", tmp_path / "data" / "short", ["BTCUSDT"], 7200 + 720)
    config = tmp_path / "casino.toml"
    config.write_text(ENSEMBLE)
    engine, truth = run_engine(tmp_path / "engine", config, tmp_path / "data")
    fast = fast_report(tmp_path / "fast", config, tmp_path / "data")
    assert len(engine["trades"]) >= 3
    assert sum(engine["skip_reasons"].values()) > 500
    assert_same_trades(engine, fast, truth)
