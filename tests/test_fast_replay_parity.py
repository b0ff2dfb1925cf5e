"""``replay --fast`` against the event-driven ``replay`` on short real datasets: the same trades.

Both run in real processes on the same recorded data (a few days cut from ../shared/data
into a temporary folder), with the in-process simulator on a FakeClock. Compared exactly
(Decimal): every trade's symbol, side, quantity, entry/exit times and prices, reason, gross
PnL and funding; fees against what the venue itself booked for the bracket's orders; the final
wallet against the venue's; and the skip-reason counts.

(The event-driven report misses the exit fee of brackets flattened at shutdown and reads its
final balance before the last user events arrive — hence the venue as the reference there.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fast_replay_helpers import assert_same_trades, fast_report, run_engine, run_fast, short_dataset
from tests.session_helpers import FAST_CONFIG

pytestmark = pytest.mark.timeout(240)

MINIMAL = FAST_CONFIG.replace('dataset = "futures-2023"', 'dataset = "short"').replace(
    "min_voters = 3", "min_voters = 1").replace("[player]", '[player]') + """
[metrics]
enabled = false
"""
MINIMAL = MINIMAL.replace("workers = 2", 'workers = 2\nenabled = ["ema_cross", "htf_trend"]')
# one position for two symbols: while either holds a bracket, the other's decisions are refused
ONE_POSITION = MINIMAL.replace("max_positions = 2", "max_positions = 1")


@pytest.fixture(scope="module")
def minimal_case(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[dict, dict, dict]:
    root = tmp_path_factory.mktemp("fast-minimal")
    data = short_dataset(data_dir / "futures-2023", root / "data" / "short", ["BTCUSDT", "ETHUSDT"], 7200 + 1440)
    config = root / "casino.toml"
    config.write_text(MINIMAL)
    engine, truth = run_engine(root / "engine", config, root / "data")
    fast = fast_report(root / "fast", config, root / "data")
    return engine, fast, truth


def test_minimal_ema_cross_same_trades(minimal_case: tuple[dict, dict, dict]) -> None:
    engine, fast, truth = minimal_case
    assert len(engine["trades"]) >= 5  # the dataset and config trade often enough to mean something
    assert_same_trades(engine, fast, truth)


def test_refusals_at_the_position_limit_same_trades(tmp_path: Path, data_dir: Path) -> None:
    """The decisions refused at the position limit are answered from an exposure bound, without
    the open bracket's marks (FastReplay._refused_within_bound); entries resume once it exits."""
    short_dataset(data_dir / "futures-2023", tmp_path / "data" / "short", ["BTCUSDT", "ETHUSDT"], 7200 + 1440)
    config = tmp_path / "casino.toml"
    config.write_text(ONE_POSITION)
    engine, truth = run_engine(tmp_path / "engine", config, tmp_path / "data")
    fast = fast_report(tmp_path / "fast", config, tmp_path / "data")
    assert engine["skip_reasons"].get("risk_max_positions", 0) >= 20
    assert len({t["symbol"] for t in engine["trades"]}) == 2  # both symbols trade between the refusals
    assert_same_trades(engine, fast, truth)


def test_fast_report_is_the_session_report(minimal_case: tuple[dict, dict, dict]) -> None:
    engine, fast, _truth = minimal_case
    assert fast["mode"] == "replay" and fast["exit_reason"] == "data_end"
    assert fast["start_ms"] == engine["start_ms"] and fast["end_ms"] == engine["end_ms"]
    assert len(fast["series"]["equity"]) > 100
    assert set(fast["series"]["prices"]) == {"BTCUSDT", "ETHUSDT"}
    assert fast["stats"]["trades"] == engine["stats"]["trades"]


@pytest.mark.parametrize("extra, key", [
    ("[croupier]\nentry_type = \"LIMIT\"\n", "croupier.entry_type"),
    ("[croupier]\ntake_profit = \"limit\"\n", "croupier.take_profit"),
])
def test_refuses_what_it_does_not_reproduce(tmp_path: Path, data_dir: Path, extra: str, key: str) -> None:
    config = tmp_path / "casino.toml"
    config.write_text(FAST_CONFIG + extra)
    proc = run_fast(tmp_path, config, data_dir)
    assert proc.returncode == 2
    assert key in proc.stderr and "without --fast" in proc.stderr
    assert not (tmp_path / "sessions").exists()  # refused before anything was created


def test_refuses_duration(tmp_path: Path, data_dir: Path) -> None:
    config = tmp_path / "casino.toml"
    config.write_text(FAST_CONFIG)
    proc = run_fast(tmp_path, config, data_dir, "--duration", "2h")
    assert proc.returncode == 2 and "--duration" in proc.stderr
    assert not (tmp_path / "sessions").exists()
