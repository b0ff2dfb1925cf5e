"""Crash tests with real processes: kill -9 the croupier at each stage, restart, check the account.

A standalone simulator runs as a subprocess (``main.py sim --speed 0 --admin``); the driver
(``tests/croupier_crash_driver.py``) is SIGKILLed at a stage, then started again on the same
state directory. After its recovery: no position without exactly one stop, no duplicate orders,
and the tracker's position and realized PnL equal the exchange's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from config.secrets import Secrets
from config.settings import ExchangeSettings
from core.clock import LiveClock
from core.types import OrderType
from core.errors import Rejected
from croupier.ids import Leg, client_id, session_tag
from croupier.sweep import sweep
from exchanges.binance.client import BinanceFutures
from exchanges.binance.urls import BinanceUrls

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "croupier_crash_driver.py"
KEY, SECRET = "crashkey", "crashsecret"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim(data_dir: Path) -> Iterator[tuple[str, str]]:
    env = {**os.environ, "CASINO_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "sim", "--speed", "0", "--admin",
                             "--symbols", "BTCUSDT", "--port", "0", "--api-key", KEY, "--api-secret", SECRET],
                            cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    while "WS_URL" not in urls or "REST_URL" not in urls:
        line = proc.stdout.readline()
        assert line, "the simulator exited before printing its URLs"
        if "=" in line:
            k, _, v = line.strip().partition("=")
            urls[k] = v
    yield urls["REST_URL"], urls["WS_URL"]
    proc.terminate()
    proc.wait(10)


def run_driver(sim: tuple[str, str], state: Path, session: str, stage: str, delay: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASINO_SIM_API_KEY": KEY, "CASINO_SIM_API_SECRET": SECRET}
    return subprocess.run([sys.executable, str(DRIVER), sim[0], sim[1], str(state), session, stage, str(delay)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


async def _client(sim: tuple[str, str]) -> BinanceFutures:
    ex = BinanceFutures(BinanceUrls(rest=sim[0], ws=sim[1]), clock=LiveClock(), settings=ExchangeSettings(),
                        secrets=Secrets(KEY, SECRET))
    await ex.start()
    return ex


@pytest.mark.parametrize("stage", ["entry_intent", "entry_filled", "sl_placed", "cancel_sibling"])
@pytest.mark.parametrize("delay", [0.0, 0.03])
async def test_kill_at_stage_then_recover(sim, tmp_path: Path, stage: str, delay: float) -> None:
    ex = await _client(sim)
    try:
        assert (await sweep(ex, ["BTCUSDT"])).flat  # each run starts from a flat account
        session = f"crash-{stage}-{int(delay * 1000)}"
        before = {t.key for t in await ex.user_trades("BTCUSDT")}
        killed = run_driver(sim, tmp_path, session, stage, delay)
        assert killed.returncode == -9, (killed.returncode, killed.stdout, killed.stderr[-2000:])
        recovered = run_driver(sim, tmp_path, session, "recover", 0)
        assert recovered.returncode == 0, recovered.stderr[-3000:]
        view = json.loads(recovered.stdout.strip().splitlines()[-1])
        positions = [p for p in await ex.positions("BTCUSDT") if not p.is_flat]
        algos = await ex.open_algo_orders("BTCUSDT")
        orders = await ex.open_orders("BTCUSDT")
        stops = [a for a in algos if a.type is OrderType.STOP_MARKET]
        tps = [a for a in algos if a.type is OrderType.TAKE_PROFIT_MARKET]
        exchange_qty = positions[0].quantity if positions else Decimal(0)
        if exchange_qty:
            assert len(stops) == 1, f"a position needs exactly one stop: {algos}"
        else:
            assert stops == [] and tps == [] and orders == [], (algos, orders)
        assert len(tps) <= 1 and orders == []
        assert Decimal(view["quantity"]) == exchange_qty
        run = [t for t in await ex.user_trades("BTCUSDT") if t.key not in before]  # this run's trades
        entries = 0
        for attempt in range(3):  # a resent entry would need another attempt number
            try:
                await ex.query_order("BTCUSDT", client_order_id=client_id(session_tag(session), "BTCUSDT", 1,
                                                                          Leg.ENTRY, attempt))
                entries += 1
            except Rejected:
                pass
        assert entries <= 1, "the entry was sent twice"
        assert entries == (0 if stage == "entry_intent" else 1)
        exchange_realized = sum((t.realized_pnl for t in run), Decimal(0))
        assert Decimal(view["exchange_realized"]) == exchange_realized
        assert Decimal(view["realized"]) == exchange_realized
    finally:
        await sweep(ex, ["BTCUSDT"])
        await ex.close()
