"""Logging: JSON lines (or readable text on a TTY) with correlation fields, secrets redacted.

Secrets are registered once (``register_secret``) by whoever loads them; every record that
passes through a Casino handler has each registered value replaced by ``***`` — in the
message, its arguments and the formatted traceback — so a key can never reach a log file.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

import orjson

_REDACTED = "***"
_secrets: set[str] = set()
_lock = threading.Lock()

# Fields a record may carry through ``extra=`` that are worth a column of their own.
CORRELATION_FIELDS = ("session", "symbol", "bracket_id", "client_order_id", "client_algo_id", "event")


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    if not _secrets:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Renders the message once, redacted, so formatters never see the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CORRELATION_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_text:
            doc["exc"] = record.exc_text
        return redact(orjson.dumps(doc, default=str).decode())


class TextFormatter(logging.Formatter):
    """Readable single lines for a terminal, correlation fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{n}={getattr(record, n)}" for n in CORRELATION_FIELDS if getattr(record, n, None)]
        if extras:
            line = f"{line} [{' '.join(extras)}]"
        return redact(line)


def setup_logging(
    *, level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None, file: str | None = None
) -> None:
    """Configure the root logger once: ``fmt`` is 'json', 'text' or 'auto' (text on a TTY)."""
    out = stream or sys.stderr
    use_text = fmt == "text" or (fmt == "auto" and out.isatty())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    if file:
        file_handler = logging.FileHandler(file, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        file_handler.addFilter(RedactingFilter())
        root.addHandler(file_handler)
    root.setLevel(level.upper())
