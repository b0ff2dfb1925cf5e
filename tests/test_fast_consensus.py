"""The vectorised consensus against the real ``core.player.decide``, bar by bar, on real data.

A fast replay's first three phases (batch readings, tracker outcomes, consensus) run on the
last 1 500 bars of recorded BTCUSDT with every sensor enabled; every 13th bar is then decided by
the real player (real readings, a real ``SensorTracker`` rebuilt for that bar, no debounce) and
must give the reason the arrays gave.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from config.loader import load_settings
from core.events import Decision, SensorReading
from core.fast_consensus import DECISION, REASONS, BarInputs, classify
from core.fast_replay import FastReplay
from core.player import Bar, PlayerParams, decide
from core.sensor_tracker import sensor_key
from core.types import Timeframe


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
        for g in range(0, fast.n_bars + 1, 13):  # global bar 0: the first live bar, decided too
            vectorised = REASONS[int(sym.codes[g])]
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


@pytest.mark.parametrize("params, counted", [
    (PlayerParams(), False),
    (PlayerParams(min_score=0.3, min_margin=0.0, min_confidence=0.2), True),
    (PlayerParams(min_score=0.0, min_margin=0.05, min_confidence=0.4, htf_filter=False), False),
    (PlayerParams(min_score=0.6, min_voters=5, min_margin=0.3, min_confidence=0.1), True),
])
def test_classify_gives_decides_reason_on_random_ballots(params: PlayerParams, counted: bool) -> None:
    # every bar of random ballots (missing and zero signals, neutral scores, scores on a coarse
    # grid so that ties and thresholds are hit exactly) against the real decide(), under
    # thresholds where the shortcuts (best winning score, presence) apply and where they do not
    rng = np.random.default_rng(3)
    n_voters, n_context, n_bars = 12, 3, 2_000
    signals = rng.choice([-1.0, -0.6, -0.2, 0.0, 0.0, 0.0, 0.3, 0.7, 1.0, np.nan], size=(n_voters, n_bars))
    scores = np.round(rng.uniform(0.0, 1.0, (n_voters, n_bars)), 2)
    neutral = rng.random((n_voters, n_bars)) < 0.1
    scores[neutral] = 0.5
    context = rng.choice([-1.0, 0.0, 1.0, np.nan], size=(n_context, n_bars))
    t0 = 1_700_000_000_000

    def reason(col: int) -> str:
        bar = Bar("BTCUSDT", Timeframe.M1, t0 + col * 60_000, Decimal(100))
        readings = [SensorReading(f"v{k}", "BTCUSDT", Timeframe.M1, bar.open_time_ms, float(signals[k, col]), 0.01,
                                  0.005) for k in range(n_voters)]
        readings += [SensorReading(f"c{k}", "BTCUSDT", Timeframe.M1, bar.open_time_ms, float(context[k, col]), 0.01,
                                   0.005, context=True) for k in range(n_context)]
        by_key = {sensor_key(f"v{k}", Timeframe.M1): float(scores[k, col]) for k in range(n_voters)}
        verdict = decide(bar, readings, by_key, params)
        return DECISION if isinstance(verdict, Decision) else verdict.reason

    present = np.count_nonzero(~np.isnan(signals), axis=0) if counted else None
    asked: list[int] = []
    codes = classify(BarInputs(signals, scores, neutral, context, present), params,
                     lambda col: asked.append(col) or reason(col))
    got = Counter(REASONS[c] for c in codes)
    for col in range(n_bars):
        assert REASONS[codes[col]] == reason(col), col
    assert len(asked) < n_bars // 4  # the arrays answer most bars themselves
    assert len(got) >= 4, got  # several reasons were compared
