"""Build ``Settings`` from the TOML file, then CASINO_* environment, then command-line flags.

Precedence (later wins): ``config/default.toml`` (or ``--config FILE``) < environment <
flags. Environment names are ``CASINO_<SECTION>__<KEY>`` (nested sections add another
``__``: ``CASINO_EXCHANGE__BREAKER__OPEN_S=30``); ``CASINO_DATA_DIR`` and
``CASINO_SYMBOLS`` are short aliases. Lists come as JSON or comma-separated text.

Every failure is a ``ConfigError`` whose message names the key, the bad value and what is
allowed; the CLI turns it into exit code 2 before anything starts.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from config.secrets import FORBIDDEN_FILE_KEYS, SECRET_ENV_NAMES
from config.settings import Settings
from core.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
ENV_PREFIX = "CASINO_"
ENV_ALIASES = {
    "CASINO_DATA_DIR": "session.data_dir",
    "CASINO_SYMBOLS": "session.symbols",
    "CASINO_MODE": "session.mode",
    "CASINO_STATE_DIR": "session.state_dir",
}
# CASINO_* names that are not settings (read elsewhere, on purpose).
ENV_NOT_SETTINGS = set(SECRET_ENV_NAMES) | {
    "CASINO_LIVE_ACK", "CASINO_CONFIG", "CASINO_CRASH_AFTER_BARS", "CASINO_SHARED_DIR",
    "CASINO_SIM_API_KEY", "CASINO_SIM_API_SECRET",
}


def load_settings(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load, merge and validate; ``overrides`` maps dotted keys ('session.speed') to values."""
    env = os.environ if env is None else env
    path = config_file or (Path(env["CASINO_CONFIG"]) if env.get("CASINO_CONFIG") else DEFAULT_CONFIG)
    data = _read_toml(path)
    _refuse_secrets(data, path)
    for dotted, value in _env_overrides(env).items():
        _set_dotted(data, dotted, _coerce_env(dotted, value), source="environment")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value, source="command line")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", key="--config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", key="--config") from None


def _refuse_secrets(data: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key.lower() in FORBIDDEN_FILE_KEYS or key.lower() == "secrets":
            raise ConfigError(
                f"{path}: '{dotted}' looks like a secret; secrets never go in the config file — "
                "set CASINO_API_KEY / CASINO_API_SECRET (or CASINO_SECRETS_FILE) instead",
                key=dotted,
            )
        if isinstance(value, dict):
            _refuse_secrets(value, path, f"{dotted}.")


def _env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        if name in ENV_ALIASES:
            out[ENV_ALIASES[name]] = value
            continue
        rest = name[len(ENV_PREFIX):]
        if "__" not in rest:
            raise ConfigError(
                f"environment variable {name} is not a Casino setting; use "
                "CASINO_<SECTION>__<KEY> (e.g. CASINO_RISK__MAX_POSITIONS=3)",
                key=name,
            )
        out[".".join(part.lower() for part in rest.split("__"))] = value
    return out


def _field_annotation(dotted: str) -> Any:
    model: type[BaseModel] = Settings
    annotation: Any = None
    for part in dotted.split("."):
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return annotation


def _coerce_env(dotted: str, value: str) -> Any:
    """Environment values are text: turn list/dict fields' text into structures."""
    annotation = _field_annotation(dotted)
    origin = get_origin(annotation)
    if origin in (list, dict) or (origin is None and annotation in (list, dict)):
        stripped = value.strip()
        if stripped.startswith(("[", "{")):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                raise ConfigError(
                    f"{dotted} (from environment): {value!r} is not valid JSON", key=dotted
                ) from None
        if origin is list or annotation is list:
            return [item.strip() for item in stripped.split(",") if item.strip()]
    if get_args(annotation) and type(None) in get_args(annotation) and value.strip() == "":
        return None
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, *, source: str) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted} ({source}): '{part}' is a value, not a section", key=dotted)
        node = child
    node[parts[-1]] = value


def _explain(exc: ValidationError, path: Path) -> ConfigError:
    lines = []
    first_key = None
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        first_key = first_key or key
        bad = err.get("input")
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown setting (value {bad!r}); check the spelling against {DEFAULT_CONFIG.name}")
        elif err["type"] == "missing":
            lines.append(f"{key}: required but missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if isinstance(bad, (dict, BaseModel)):  # a cross-field rule: the message names the keys
                lines.append(f"{key}: {msg}")
            else:
                lines.append(f"{key}: {bad!r} is not allowed — {msg}")
    return ConfigError(f"invalid configuration ({path}):\n  " + "\n  ".join(lines), key=first_key)
