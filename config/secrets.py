"""API credentials: only from the environment or a key file, never from the TOML.

``Secrets`` masks itself in ``repr``/``str`` and registers every value with the log
redactor, so a key cannot reach a log line, a state file, a report or a metric.

Environment:
- ``CASINO_API_KEY``            the API key (sent in X-MBX-APIKEY)
- ``CASINO_API_SECRET``         the HMAC-SHA256 secret
- ``CASINO_ED25519_KEY_FILE``   path to a PKCS#8 PEM Ed25519 private key (instead of a secret)
- ``CASINO_SECRETS_FILE``       path to a file of ``NAME=value`` lines with the names above
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.logs import register_secret

ENV_API_KEY = "CASINO_API_KEY"
ENV_API_SECRET = "CASINO_API_SECRET"
ENV_ED25519_KEY_FILE = "CASINO_ED25519_KEY_FILE"
ENV_SECRETS_FILE = "CASINO_SECRETS_FILE"
SECRET_ENV_NAMES = (ENV_API_KEY, ENV_API_SECRET, ENV_ED25519_KEY_FILE, ENV_SECRETS_FILE)

# Names a TOML file must never contain: a hint that someone pasted a key into it.
FORBIDDEN_FILE_KEYS = {"api_key", "api_secret", "secret", "secret_key", "private_key", "apikey"}


@dataclass(frozen=True, slots=True, repr=False)
class Secrets:
    api_key: str | None = None
    api_secret: str | None = None
    ed25519_key_file: Path | None = None

    @property
    def present(self) -> bool:
        return bool(self.api_key and (self.api_secret or self.ed25519_key_file))

    def __repr__(self) -> str:
        def mask(v: object) -> str:
            return "None" if v is None else "'***'"

        return (
            f"Secrets(api_key={mask(self.api_key)}, api_secret={mask(self.api_secret)}, "
            f"ed25519_key_file={self.ed25519_key_file!s})"
        )

    __str__ = __repr__


def _read_secrets_file(path: Path) -> dict[str, str]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{ENV_SECRETS_FILE}={path}: cannot read it ({exc.strerror})", key=ENV_SECRETS_FILE) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{ENV_SECRETS_FILE}={path} is readable by other users; run: chmod 600 {path}",
            key=ENV_SECRETS_FILE,
        )
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name not in (ENV_API_KEY, ENV_API_SECRET, ENV_ED25519_KEY_FILE):
            raise ConfigError(
                f"{path}:{lineno}: expected NAME=value with NAME one of "
                f"{ENV_API_KEY}, {ENV_API_SECRET}, {ENV_ED25519_KEY_FILE}",
                key=ENV_SECRETS_FILE,
            )
        values[name] = value.strip().strip('"').strip("'")
    return values


def load_secrets(env: Mapping[str, str] | None = None) -> Secrets:
    """Read credentials from ``env`` (default: os.environ) and an optional secrets file."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    if env.get(ENV_SECRETS_FILE):
        values.update(_read_secrets_file(Path(env[ENV_SECRETS_FILE])))
    for name in (ENV_API_KEY, ENV_API_SECRET, ENV_ED25519_KEY_FILE):
        if env.get(name):
            values[name] = env[name]
    key_file = Path(values[ENV_ED25519_KEY_FILE]) if values.get(ENV_ED25519_KEY_FILE) else None
    if key_file is not None and not key_file.is_file():
        raise ConfigError(f"{ENV_ED25519_KEY_FILE}={key_file}: no such file", key=ENV_ED25519_KEY_FILE)
    secrets = Secrets(
        api_key=values.get(ENV_API_KEY) or None,
        api_secret=values.get(ENV_API_SECRET) or None,
        ed25519_key_file=key_file,
    )
    register_secret(secrets.api_key)
    register_secret(secrets.api_secret)
    return secrets
