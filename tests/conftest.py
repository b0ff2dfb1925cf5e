"""Shared test fixtures: where ../shared lives, and real data/fixture paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CASINO_SHARED_DIR", REPO.parent / "shared"))
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures" / "binance"

if not DATA.is_dir():  # fail loudly: the tests are worthless without the real data
    raise RuntimeError(f"../shared not found at {SHARED}; set CASINO_SHARED_DIR")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
