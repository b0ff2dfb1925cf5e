"""The decision path wired as the engine wires it, on real BTCUSDT 1m candles.

Per closed bar: tracker.on_candle → risk.on_candle → player.open_bar / add_readings /
close_bar(scores) → tracker.record → for a Decision: size_entry(stats of the winning voters)
→ risk.check_entry → (a toy bracket stands in for the croupier) → fills/PnL back into risk and
the player's bracket flag. Three toy sensors computed here from the candles stand in for the
real sensor pool. A snapshot taken mid-run through JSON and restored into fresh objects
must produce the very same verdicts afterwards.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import PlayerSettings, RiskSettings, SizingSettings, TrackerSettings
from core.clock import FakeClock
from core.events import Decision, SensorReading, Skip
from core.history import load_candles
from core.player import Player, PlayerParams, winning_keys
from core.risk import EntryIntent, Exposure, RiskGate, RiskParams
from core.sensor_tracker import SensorTracker, TrackerParams
from core.sizing import Size, SizingParams, size_entry
from core.types import Candle, Rounding, Side, SymbolRules, Timeframe

D = Decimal
SYMBOL = "BTCUSDT"
RULES = SymbolRules(SYMBOL, tick_size=D("0.1"), step_size=D("0.001"), min_qty=D("0.001"), max_qty=D("1000"),
                    min_notional=D("100"))
EQUITY = D("10000")


@pytest.fixture(scope="module")
def market(data_dir: Path) -> tuple[list[Candle], list[list[SensorReading]]]:
    s = load_candles(data_dir / "futures-2023" / f"{SYMBOL}-1m.csv.gz")
    n = 1800
    close, high, low = s.close[:n], s.high[:n], s.low[:n]
    candles = [Candle(SYMBOL, Timeframe.M1, int(s.open_time[i]), D(str(s.open[i])), D(str(high[i])),
                      D(str(low[i])), D(str(close[i])), D(str(s.volume[i]))) for i in range(n)]
    readings = []
    for i in range(n):
        t = int(s.open_time[i])
        def r(name: str, sig: float | None, tp: float, sl: float, ctx: bool = False) -> SensorReading:
            return SensorReading(name, SYMBOL, Timeframe.M1, t, sig, tp, sl, ctx)
        if i < 60:  # warming up: present as missing, never as neutral
            readings.append([r(n_, None, 0.003, 0.002) for n_ in ("mom3", "rev5", "brk20")]
                            + [r("trend60", None, 0.01, 0.01, True)])
            continue
        mom = float(np.clip((close[i] - close[i - 3]) / close[i - 3] / 0.001, -1, 1))
        rev = float(np.clip(-(close[i] - close[i - 5]) / close[i - 5] / 0.001, -1, 1))
        brk = 1.0 if close[i] > high[i - 20:i].max() else -1.0 if close[i] < low[i - 20:i].min() else 0.0
        trend = float(np.sign(close[i] - close[i - 60:i].mean()))
        readings.append([r("mom3", mom, 0.003, 0.002), r("rev5", rev, 0.002, 0.002),
                         r("brk20", brk, 0.004, 0.002), r("trend60", trend, 0.01, 0.01, True)])
    return candles, readings


@dataclass
class ToyBracket:
    side: Side
    qty: Decimal
    entry: Decimal
    tp: Decimal
    sl: Decimal


class Desk:
    """Everything the engine would own for the decision path, plus a toy croupier."""

    def __init__(self, start_ms: int) -> None:
        self.clock = FakeClock(start_ms)
        self.tracker = SensorTracker(TrackerParams.from_settings(TrackerSettings(), PlayerSettings()))
        self.player = Player(PlayerParams.from_settings(PlayerSettings(min_voters=2)), [SYMBOL], clock=self.clock)
        self.sizing = SizingParams.from_settings(SizingSettings())
        self.risk = RiskGate(RiskParams.from_settings(RiskSettings()), self.clock, allowlist=[SYMBOL],
                             start_equity=EQUITY)
        self.bracket: ToyBracket | None = None
        self.verdicts: list[tuple[int, str]] = []
        self.entries: list[tuple[Size, Decimal]] = []  # (size, equity it was sized on)
        self.realized = D(0)

    def on_bar(self, candle: Candle, readings: list[SensorReading]) -> None:
        close_ms = candle.open_time_ms + 60_000
        self.clock.set_ms(max(self.clock.now_ms(), close_ms))
        self.tracker.on_candle(candle)  # 1. votes resolve on this bar
        self.risk.on_candle(candle)
        self._manage_bracket(candle)
        # 2. one verdict for this bar
        assert self.player.open_bar(candle, received_ms=close_ms)
        self.player.add_readings(readings)
        verdict = self.player.close_bar(SYMBOL, self.tracker.scores())
        assert verdict is not None
        self.tracker.record(readings, price=candle.close, at_ms=close_ms)  # 3. every vote is scored later
        self.verdicts.append((candle.open_time_ms, verdict.reason if isinstance(verdict, Skip) else verdict.side.value))
        if isinstance(verdict, Decision):
            assert self.bracket is None
            self._enter(verdict)

    def _enter(self, d: Decision) -> None:
        equity = EQUITY + self.realized
        size = size_entry(price=d.reference_price, sl_fraction=d.sl_fraction, equity=equity,
                          rules=RULES, stats=self.tracker.performance(winning_keys(d)), params=self.sizing)
        assert isinstance(size, Size)
        exposure = Exposure(EQUITY + self.realized)
        if not self.risk.check_entry(EntryIntent(SYMBOL, d.side, size.notional), exposure).allowed:
            return
        self.entries.append((size, equity))
        for _ in range(3):  # entry + SL + TP
            self.risk.on_order_sent()
        sign = d.side.sign
        tp = RULES.round_price(d.reference_price * (1 + sign * D(str(d.tp_fraction))), Rounding.away_from_market(d.side.opposite))
        sl = RULES.round_price(d.reference_price * (1 - sign * D(str(d.sl_fraction))), Rounding.away_from_market(d.side.opposite))
        self.bracket = ToyBracket(d.side, size.quantity, d.reference_price, tp, sl)
        self.player.set_bracket_active(SYMBOL, True)

    def _manage_bracket(self, c: Candle) -> None:
        b = self.bracket
        if b is None:
            return
        long = b.side is Side.BUY
        exit_price = None
        if (c.low <= b.sl) if long else (c.high >= b.sl):
            exit_price = b.sl  # stop first when both are inside the bar
        elif (c.high >= b.tp) if long else (c.low <= b.tp):
            exit_price = b.tp
        if exit_price is None:
            self.risk.set_unrealized((c.close - b.entry) * b.qty * b.side.sign)
            return
        pnl = (exit_price - b.entry) * b.qty * b.side.sign
        self.realized += pnl
        self.risk.set_unrealized(D(0))
        self.risk.on_realized(pnl)
        self.risk.on_trade_closed(pnl)
        self.bracket = None
        self.player.set_bracket_active(SYMBOL, False)

    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps({"tracker": self.tracker.to_dict(), "player": self.player.to_dict(),
                                      "risk": self.risk.to_dict()}))

    def restore(self, doc: dict[str, Any]) -> None:
        self.tracker = SensorTracker.from_dict(doc["tracker"], self.tracker._p)
        self.player.restore(doc["player"])
        self.risk.restore(doc["risk"])


def test_decision_path_on_real_candles(market: tuple[list[Candle], list[list[SensorReading]]]) -> None:
    candles, readings = market
    desk = Desk(candles[0].open_time_ms)
    for c, rs in zip(candles, readings, strict=True):
        desk.on_bar(c, rs)
    reasons = Counter(r for _, r in desk.verdicts)
    # exactly one verdict per bar, and the counters agree with what was returned
    assert len(desk.verdicts) == len(candles) == len({t for t, _ in desk.verdicts})
    assert sum(desk.player.skip_counts.values()) + sum(desk.player.decision_counts.values()) == len(candles)
    assert reasons["insufficient_data"] >= 60  # the warm-up bars: missing is not neutral
    assert reasons["BUY"] + reasons["SELL"] > 0 and reasons["bracket_open"] > 0 and reasons["against_htf"] > 0
    cap = desk.sizing.max_notional_fraction
    assert desk.entries and all(s.notional <= equity * cap for s, equity in desk.entries)
    assert {s.basis for s, _ in desk.entries} == {"fallback", "kelly"}  # Kelly took over once it could
    # the tracker learned: every sensor has resolved votes and at least one left neutral
    scores = desk.tracker.scores()
    assert set(scores) == {"mom3@1m", "rev5@1m", "brk20@1m"}
    assert any(abs(v - 0.5) > 0.01 for v in scores.values())
    b = desk.bracket
    unrealized = (candles[-1].close - b.entry) * b.qty * b.side.sign if b else D(0)
    assert desk.risk.daily_pnl == desk.realized + unrealized


def test_restart_mid_run_gives_identical_verdicts(market: tuple[list[Candle], list[list[SensorReading]]]) -> None:
    candles, readings = market
    cut = 1000
    live = Desk(candles[0].open_time_ms)
    for c, rs in zip(candles[:cut], readings[:cut], strict=True):
        live.on_bar(c, rs)
    doc = live.snapshot()
    restarted = Desk(live.clock.now_ms())
    restarted.restore(doc)
    restarted.bracket, restarted.realized = live.bracket, live.realized  # the croupier's own state
    restarted.player.set_bracket_active(SYMBOL, live.bracket is not None)
    for c, rs in zip(candles[cut:], readings[cut:], strict=True):
        live.on_bar(c, rs)
        restarted.on_bar(c, rs)
    assert restarted.verdicts == live.verdicts[cut:]
    assert restarted.tracker.scores() == live.tracker.scores()
