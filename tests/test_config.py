"""Configuration: precedence, secret masking, and one test per class of bad config."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import load_settings
from config.secrets import load_secrets
from core.errors import ConfigError
from core.logs import JsonFormatter, RedactingFilter, TextFormatter

REPO = Path(__file__).resolve().parents[1]
CANARY_SECRET = "canary-SECRET-7f3a9c1d2e"
CANARY_KEY = "canary-APIKEY-0b1c2d3e4f"


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CASINO_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=60,
    )


def test_defaults_load_from_shipped_file() -> None:
    settings = load_settings(env={})
    assert settings.session.mode == "paper"
    assert settings.sensors.tp_fraction["1m"] == 0.015
    assert settings.exchange.breaker.failure_threshold == 5
    assert settings.allowlist == settings.session.symbols


def test_precedence_file_then_env_then_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[session]\nspeed = 10.0\nsymbols = ["SOLUSDT"]\n[risk]\nmax_positions = 2\n')
    only_file = load_settings(cfg, env={})
    assert (only_file.session.speed, only_file.session.symbols, only_file.risk.max_positions) == (10.0, ["SOLUSDT"], 2)
    env = {"CASINO_SESSION__SPEED": "20", "CASINO_SYMBOLS": "btcusdt, ethusdt", "CASINO_RISK__MAX_POSITIONS": "3"}
    with_env = load_settings(cfg, env=env)
    assert (with_env.session.speed, with_env.session.symbols, with_env.risk.max_positions) == (20.0, ["BTCUSDT", "ETHUSDT"], 3)
    with_flag = load_settings(cfg, env=env, overrides={"session.speed": 30.0, "risk.max_positions": None})
    assert (with_flag.session.speed, with_flag.risk.max_positions) == (30.0, 3)


def test_nested_env_and_json_lists() -> None:
    settings = load_settings(env={"CASINO_EXCHANGE__BREAKER__OPEN_S": "30", "CASINO_SENSORS__DISABLED": '["rsi_2"]'})
    assert settings.exchange.breaker.open_s == 30.0
    assert settings.sensors.disabled == ["rsi_2"]


def test_secrets_never_appear_in_repr_str_or_logs() -> None:
    secrets = load_secrets({"CASINO_API_KEY": CANARY_KEY, "CASINO_API_SECRET": CANARY_SECRET})
    assert secrets.present
    for text in (repr(secrets), str(secrets), f"{secrets}"):
        assert CANARY_SECRET not in text and CANARY_KEY not in text
    for formatter in (JsonFormatter(), TextFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        logger = logging.getLogger(f"canary.{type(formatter).__name__}")
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.error("signing with %s and key %s", CANARY_SECRET, CANARY_KEY)
        try:
            raise RuntimeError(f"bad secret {CANARY_SECRET}")
        except RuntimeError:
            logger.exception("failed")
        logger.info("secrets=%r", secrets, extra={"symbol": CANARY_KEY})
        out = stream.getvalue()
        assert CANARY_SECRET not in out and CANARY_KEY not in out
        assert out.count("***") >= 4


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "keys.env"
    path.write_text(f"CASINO_API_KEY={CANARY_KEY}\nCASINO_API_SECRET={CANARY_SECRET}\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secrets({"CASINO_SECRETS_FILE": str(path)})
    path.chmod(0o600)
    assert load_secrets({"CASINO_SECRETS_FILE": str(path)}).api_secret == CANARY_SECRET


def test_config_command_masks_secrets() -> None:
    result = run_main("config", env={"CASINO_API_KEY": CANARY_KEY, "CASINO_API_SECRET": CANARY_SECRET})
    assert result.returncode == 0, result.stderr
    assert CANARY_SECRET not in result.stdout + result.stderr
    assert CANARY_KEY not in result.stdout + result.stderr
    assert "api_key='***'" in result.stdout


BAD_CONFIGS = [
    # (class, file body, env, key that must be named)
    ("unknown key", "[risk]\nmax_positon = 3\n", {}, "risk.max_positon"),
    ("unknown section", "[riks]\nmax_positions = 3\n", {}, "riks"),
    ("wrong type", '[session]\nspeed = "fast"\n', {}, "session.speed"),
    ("out of range", "[risk]\nmax_positions = 0\n", {}, "risk.max_positions"),
    ("bad choice", '[session]\non_exit = "panic"\n', {}, "session.on_exit"),
    ("contradictory", "[sizing]\nmin_fraction = 0.2\nmax_fraction = 0.1\n", {}, "min_fraction"),
    ("cross-section", '[session]\nsymbols = ["BTCUSDT"]\n[risk]\nallowlist = ["ETHUSDT"]\n', {}, "allowlist"),
    ("secret in file", '[exchange]\napi_secret = "abc"\n', {}, "exchange.api_secret"),
    ("bad env value", "", {"CASINO_SESSION__DURATION_S": "-5"}, "session.duration_s"),
    ("unknown env", "", {"CASINO_RISK__NOPE": "1"}, "risk.nope"),
    ("not toml", "[session\n", {}, "not valid TOML"),
    ("bad symbol", '[session]\nsymbols = ["BTC/USDT"]\n', {}, "session.symbols"),
    ("fraction as percent", '[sensors.tp_fraction]\n"1m" = 1.5\n', {}, "sensors.tp_fraction"),
    ("non-loopback metrics", '[metrics]\naddr = "0.0.0.0:9108"\n', {}, "allow_non_loopback"),
]


@pytest.mark.parametrize(("name", "body", "env", "key"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_is_exit_2_naming_the_key(tmp_path: Path, name: str, body: str, env: dict[str, str], key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env=env)
    assert key in str(info.value)
    result = run_main("config", "--config", str(cfg), env=env)
    assert result.returncode == 2
    assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_main("config", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_bad_usage_is_exit_2() -> None:
    result = run_main("no-such-command")
    assert result.returncode == 2
