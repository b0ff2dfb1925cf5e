"""The registry: enough sensors, complete metadata, config-driven plans."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from config.settings import SensorSettings
from core.errors import ConfigError
from core.sensor_plan import build_plan, enabled_names
from core.types import Timeframe
from sensors.base import Family
from sensors.registry import builtin_sensors

BUILTIN = builtin_sensors()


def test_at_least_fifty_sensors_across_every_family() -> None:
    assert len(BUILTIN) >= 50
    assert {s.family for s in BUILTIN.values()} == set(Family)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_metadata_is_complete(name: str) -> None:
    spec = BUILTIN[name]
    assert spec.description
    assert spec.warmup_bars() >= 0 and spec.window_bars() > spec.warmup_bars()
    assert spec.timeframes and all(Timeframe(tf) for tf in spec.timeframes)
    for indicator in spec.indicators:
        assert hasattr(talib, indicator), f"{name} names {indicator}, which TA-Lib lacks"


def test_context_sensors_are_the_regime_family() -> None:
    context = {n for n, s in BUILTIN.items() if s.context}
    assert context == {n for n, s in BUILTIN.items() if s.family is Family.REGIME}
    assert {"htf_trend", "hurst", "vol_regime"} <= context


def test_enabled_accepts_names_and_families_minus_disabled() -> None:
    settings = SensorSettings(enabled=["trend", "rsi14"], disabled=["psar"])
    names = enabled_names(settings, BUILTIN)
    assert "rsi14" in names and "ema_cross" in names
    assert "psar" not in names and "cdl_hammer" not in names


def test_plan_applies_params_timeframes_and_fractions() -> None:
    settings = SensorSettings(
        enabled=["rsi14", "htf_trend"],
        params={"rsi14": {"period": 21}},
        sensor_timeframes={"rsi14": ["5m", "1h"]},
        tp_fraction_by_sensor={"rsi14": {"5m": 0.05}},
    )
    plan = build_plan(settings, BUILTIN)
    assert plan.sensors_for(Timeframe.M1) == ()
    (rsi5,) = plan.sensors_for(Timeframe.M5)
    assert dict(rsi5.params)["period"] == 21 and rsi5.tp_fraction == 0.05 and rsi5.sl_fraction == 0.02
    one_hour = {s.name: s for s in plan.sensors_for(Timeframe.H1)}
    assert one_hour["rsi14"].tp_fraction == 0.12 and one_hour["htf_trend"].context
    assert [s.name for s in plan.sensors_for(Timeframe.H4)] == ["htf_trend"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"enabled": ["no_such_sensor"]}, "no_such_sensor"),
        ({"params": {"rsi14": {"periodd": 3}}}, "periodd"),
        ({"params": {"rsi14": {"period": "fast"}}}, "must be int"),
        ({"params": {"ghost": {"period": 3}}}, "ghost"),
        ({"window_bars": 100}, "window_bars"),
    ],
)
def test_bad_sensor_config_is_a_config_error_naming_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_plan(SensorSettings(**kwargs), BUILTIN)


def test_batch_signals_follow_the_plan(data_dir) -> None:
    from core.sensor_plan import batch_signals

    from _sensor_data import SLICES, bars

    b = bars(data_dir, *SLICES[0])
    settings = SensorSettings(enabled=["momentum"], params={"rsi14": {"period": 9}})
    plan = build_plan(settings, BUILTIN)
    out = batch_signals(plan, BUILTIN, Timeframe.M5, b)
    assert set(out) == {n for n, s in BUILTIN.items() if s.family is Family.MOMENTUM}
    assert np.array_equal(out["rsi14"], BUILTIN["rsi14"].compute(b, {"period": 9, "low": 30.0, "high": 70.0}),
                          equal_nan=True)
    assert not np.array_equal(out["rsi14"], BUILTIN["rsi14"].compute(b), equal_nan=True)
