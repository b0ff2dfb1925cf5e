"""The fast replay's refusals answered from an exposure bound against the same refusals answered
on the real marks, on the seven recorded symbols.

``FastReplay._refused_within_bound`` answers a decision refused for a reason no size changes
(the position limit, a loss cooldown …) from an exposure bound instead of the open brackets'
marks. The reference here is the same replay with that shortcut declined at every decision, so
each decision takes the path that rebuilds the marks: the trades, every skip count and the final
wallet must be the same. The limits are chosen so that the refusal reason changes between
decisions (position limit reached and released, sizing left without headroom by the gross
exposure limit, loss cooldowns). Within an epoch (wallet, brackets and the gate's counts
unchanged) the bound's sizing and the gate's max_positions answer are reused, and a symbol's
decisions certain to be refused are taken ahead of the queue up to the next exit or funding
(``_sweep``), which the same comparison covers; the gate's own rejection counts must match too.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_settings
from core.fast_replay import FastReplay, _Symbol

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


class MarksEveryTime(FastReplay):
    """The fast replay with the bound declined: every decision is settled on the real marks."""

    def _refused_within_bound(self, sym: _Symbol, g: int, t_ms: int) -> bool:
        return False


class CountingBound(FastReplay):
    """The fast replay as it is, counting the decisions the bound answered, and among them the
    ones answered without asking the gate (its max_positions answer reused within an epoch)."""

    answered = 0
    reused = 0
    swept = 0

    def _refused_within_bound(self, sym: _Symbol, g: int, t_ms: int) -> bool:
        refused = super()._refused_within_bound(sym, g, t_ms)
        self.answered += refused
        return refused

    def _sweep(self, sym: _Symbol, g: int) -> int:
        before = len(sym.decisions)
        last = super()._sweep(sym, g)
        self.swept += len(sym.decisions) - before
        return last

    def _count_refusal(self, reason: str, n: int = 1) -> None:
        self.reused += n
        super()._count_refusal(reason, n)


def _settings(data_dir: Path, limits: dict[str, Any]) -> Any:
    """The minimal strategy on the seven symbols' last 4,000 bars, with ``limits`` on top."""
    return load_settings(None, overrides={
        "session.mode": "replay", "session.symbols": SYMBOLS, "session.data_dir": data_dir,
        "session.dataset": "futures-2023", "sim.warmup_bars": 43_195 - 4_000,
        "sensors.enabled": ["ema_cross", "htf_trend"], "player.min_voters": 1,
        "risk.daily_loss_limit_fraction": 0.5, **limits,
    })


def outcome(replay: FastReplay) -> tuple[Any, ...]:
    return replay.trades, dict(replay.extra_skips), replay.sv.wallet(), dict(replay.risk.rejection_counts)


@pytest.mark.parametrize("limits, reasons", [
    ({"risk.max_positions": 2, "risk.max_consecutive_losses": 1, "risk.loss_cooldown_s": 3600},
     {"risk_max_positions", "risk_loss_cooldown"}),
    ({"risk.max_positions": 4, "risk.max_gross_exposure_usdt": 2600},
     {"risk_max_positions", "size_no_headroom"}),
])
def test_bound_refusals_are_the_refusals_on_the_marks(data_dir: Path, limits: dict[str, Any],
                                                      reasons: set[str]) -> None:
    settings = _settings(data_dir, limits)
    bounded = CountingBound(settings, "test-bound")
    bounded.run()
    on_marks = MarksEveryTime(settings, "test-bound")
    on_marks.run()

    assert outcome(bounded) == outcome(on_marks)
    assert reasons <= set(bounded.extra_skips)  # the refusal reason changed between decisions
    without_marks = bounded.answered + bounded.swept
    assert without_marks >= 50 and without_marks < sum(bounded.extra_skips.values())
    # reused (some decided ahead, up to the next exit or funding), and asked again after each epoch's start
    assert 0 < bounded.swept < bounded.reused < without_marks
    assert len(bounded.trades) >= 10 and bounded.sv.wallet() != Decimal(10_000)


class DecidesEveryTime(FastReplay):
    """The fast replay building every decision that sizing refuses for want of headroom."""

    def _no_room_whatever_the_decision(self, sym: _Symbol, g: int, exposure: Any) -> bool:
        return False


class CountingNoRoom(FastReplay):
    answered = 0

    def _no_room_whatever_the_decision(self, sym: _Symbol, g: int, exposure: Any) -> bool:
        refused = super()._no_room_whatever_the_decision(sym, g, exposure)
        self.answered += refused
        return refused


def test_no_headroom_refusals_without_the_decision_are_the_refusals_with_it(data_dir: Path) -> None:
    # the gross exposure limit used up below the position limit: sizing refuses before it reads
    # the decision, so the decision (exact scores, tracker rebuilt) need not be built
    settings = _settings(data_dir, {"risk.max_positions": 6, "risk.max_gross_exposure_usdt": 2600})
    short_cut = CountingNoRoom(settings, "test-no-room")
    short_cut.run()
    built = DecidesEveryTime(settings, "test-no-room")
    built.run()

    assert outcome(short_cut) == outcome(built)
    assert short_cut.answered >= 20 and short_cut.extra_skips["size_no_headroom"] == short_cut.answered
    assert len(short_cut.trades) >= 10
