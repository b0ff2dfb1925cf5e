"""Preflight against the simulated Binance: a go on a fresh paper account, a clear no in hedge mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exchanges.binance.client import BinanceFutures
from exchanges.binance.preflight import Status, preflight
from exchanges.sim.feed import SymbolData
from exchanges.sim.server import SimServer
from tests.binance_sim import connector, load_recorded, sim_server


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, SymbolData]:
    return load_recorded(data_dir)


@pytest.fixture
async def server(recorded: dict[str, SymbolData]):
    srv = sim_server(recorded)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: SimServer):
    c = connector(server)
    yield c
    await c.close()


async def _run(server: SimServer, client: BinanceFutures) -> dict[str, tuple[Status, str]]:
    """Preflight while the manual clock moves, so the /market route has a kline to deliver."""
    task = asyncio.create_task(preflight(client, ["BTCUSDT", "ETHUSDT"], kline_timeout_s=5.0))
    async with asyncio.timeout(10):
        while not task.done():
            await asyncio.sleep(0.01)
            await server.advance(5)
    return {c.name: (c.status, c.detail) for c in task.result().checks}


async def test_preflight_passes_against_the_simulator(server: SimServer, client: BinanceFutures) -> None:
    checks = await _run(server, client)
    assert {name: status for name, (status, _) in checks.items()} == {
        "connectivity": Status.PASS, "clock_offset": Status.PASS, "account_modes": Status.PASS,
        "api_key_permissions": Status.SKIP,  # served by the spot host only; none configured
        "algo_endpoints": Status.PASS, "symbols_trading": Status.PASS, "market_stream": Status.PASS,
    }


async def test_preflight_refuses_hedge_mode_with_the_reason(server: SimServer, client: BinanceFutures) -> None:
    await client.set_position_mode(True)  # the account switched to hedge (dual-side) mode
    checks = await _run(server, client)
    status, detail = checks["account_modes"]
    assert status is Status.FAIL
    assert "hedge" in detail and "one-way" in detail
    failed = [name for name, (s, _) in checks.items() if s is Status.FAIL]
    assert failed == ["account_modes"]
