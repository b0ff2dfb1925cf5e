"""Helpers to read Binance fixtures in place from ../shared (never copied into the repo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_json(path: Path) -> Any:
    """A fixture JSON file; nautilus wraps some ws captures as {stream, data}: unwrap them."""
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "data" in data and "stream" in data:
        return data["data"]
    return data


def load_binance_net(path: Path) -> Any:
    """Binance.Net REST fixture: METHOD, path, signed, then the JSON body."""
    lines = path.read_text().splitlines()
    return json.loads("\n".join(lines[3:]))
