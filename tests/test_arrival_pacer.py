"""ArrivalPacer: the window a sensor worker stays awake in, learned from task arrivals."""

from __future__ import annotations

import pytest

from core.arrival_pacer import MAX_HALF_WINDOW_S, MIN_HALF_WINDOW_S, ArrivalPacer


def test_no_window_until_a_cadence_is_seen() -> None:
    pacer = ArrivalPacer()
    assert pacer.window() is None
    pacer.arrived(10.0)
    pacer.arrived(10.5)
    assert pacer.window() is None  # one interval is not a cadence yet
    pacer.arrived(11.0)
    opens, closes = pacer.window() or (0.0, 0.0)
    assert opens < 11.5 < closes and closes - opens <= 2 * MAX_HALF_WINDOW_S


def test_the_window_narrows_to_the_prediction_errors_and_follows_the_cadence() -> None:
    pacer = ArrivalPacer()
    t = 100.0
    for _ in range(12):  # a paper session's 0.5 s bars, arriving within 0.2 ms of the cadence
        pacer.arrived(t)
        t += 0.5 + (0.0002 if int(t * 2) % 2 else -0.0002)
    opens, closes = pacer.window() or (0.0, 0.0)
    expected = (opens + closes) / 2
    assert closes - opens == pytest.approx(2 * MIN_HALF_WINDOW_S)  # 2 × the errors, at least the floor
    assert abs(expected - (t - 0.5 + 0.5)) < 0.01  # centred on the next bar


def test_a_pause_widens_the_window_but_never_past_the_cap_and_keeps_the_cadence() -> None:
    pacer = ArrivalPacer()
    for t in (0.0, 1.0, 2.0, 3.0):
        pacer.arrived(t)
    pacer.arrived(30.0)  # the stream paused: a long interval does not change the cadence
    assert pacer.period() == pytest.approx(1.0)
    opens, closes = pacer.window() or (0.0, 0.0)
    assert closes - opens == pytest.approx(2 * MAX_HALF_WINDOW_S)
    assert opens < 31.0 < closes


def test_a_replay_feeding_bars_back_to_back_gets_no_window() -> None:
    pacer = ArrivalPacer()
    for k in range(10):
        pacer.arrived(k * 0.002)  # 2 ms apart: the engine is busy, a spinning worker would steal its CPU
    assert pacer.period() is None and pacer.window() is None
