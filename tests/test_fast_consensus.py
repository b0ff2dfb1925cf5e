"""The vectorised consensus against the real ``core.player.decide``, bar by bar, on real data.

A fast replay's first three phases (batch readings, tracker outcomes, consensus) run on the
last 1 500 bars of recorded BTCUSDT with every sensor enabled; every 13th bar is then decided by
the real player (real readings, a real ``SensorTracker`` rebuilt for that bar, no debounce) and
must give the reason the arrays gave.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from config.loader import load_settings
from core.fast_consensus import DECISION, REASONS
from core.fast_replay import FastReplay


@pytest.fixture(scope="module")
def fast(data_dir: Path) -> FastReplay:
    settings = load_settings(None, overrides={
        "session.mode": "replay", "session.symbols": ["BTCUSDT", "BNBUSDT"], "session.data_dir": data_dir,
        "session.dataset": "futures-2023", "sim.warmup_bars": 43_195 - 1_500,
        "sensors.timeframes": ["1m", "5m", "15m", "1h"], "player.min_voters": 3, "player.min_margin": 0.05,
        "player.min_confidence": 0.01,
    })
    replay = FastReplay(settings, "test-consensus")
    replay._load()  # noqa: SLF001 - the phases are what is under test
    replay._track()  # noqa: SLF001
    replay._consensus()  # noqa: SLF001
    return replay


def test_every_sampled_bar_is_classified_as_decide_says(fast: FastReplay) -> None:
    seen: Counter[str] = Counter()
    for sym in fast.symbols:
        assert sym.codes is not None
        for g in range(1, fast.n_bars + 1, 13):
            vectorised = REASONS[int(sym.codes[g - 1])]
            assert fast._exact_reason(sym, g) == vectorised, (sym.name, g)  # noqa: SLF001
            seen[vectorised] += 1
    assert sum(seen.values()) >= 200
    assert seen[DECISION] > 0 and len(seen) >= 3  # deciding bars and several skip reasons were compared


def test_refuses_when_the_tracker_would_drop_open_votes(data_dir: Path) -> None:
    from core.errors import ConfigError

    settings = load_settings(None, overrides={
        "session.mode": "replay", "session.symbols": ["BTCUSDT"], "session.data_dir": data_dir,
        "session.dataset": "futures-2023", "sim.warmup_bars": 43_195 - 300, "sensors.timeframes": ["1m", "5m"],
        "tracker.max_open_votes": 100,
    })
    replay = FastReplay(settings, "test-open-votes")
    with pytest.raises(ConfigError, match="tracker.max_open_votes"):
        replay.run()
