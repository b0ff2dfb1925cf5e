"""`python main.py sensors`: the registry as a table, driven by the configuration."""

from __future__ import annotations

import pytest

import main
from sensors.registry import all_sensors


def test_lists_every_sensor_with_its_role_and_state(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASINO_SENSORS__DISABLED", '["patterns", "psar"]')
    assert main.main(["sensors"]) == main.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and not line[0].isdigit()}
    assert set(all_sensors()) <= set(rows)
    assert rows["psar"].endswith(" no") and rows["cdl_hammer"].endswith(" no")
    assert rows["rsi14"].endswith(" yes") and " voter " in rows["rsi14"] and "1m,5m,15m,1h" in rows["rsi14"]
    assert " context " in rows["htf_trend"] and "1h,4h" in rows["htf_trend"]
    assert lines[-1].startswith(f"{len(all_sensors())} sensors")


def test_an_unknown_sensor_in_the_config_exits_2(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASINO_SENSORS__ENABLED", '["rsi14", "no_such"]')
    assert main.main(["sensors"]) == main.EXIT_USAGE
    assert "no_such" in capsys.readouterr().err
