"""``python main.py sim`` as a real process: machine-readable first lines, signed REST, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from tests.sim_client import BinanceTestClient

REPO = Path(__file__).resolve().parents[1]


async def test_standalone_server_serves_until_sigterm(data_dir: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", "sim", "--symbols", "BTCUSDT", "--speed", "600", "--balance", "2500",
        "--data-dir", str(data_dir), "--api-key", "cli-key", "--api-secret", "cli-secret",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        info: dict[str, str] = {}
        async with asyncio.timeout(30):
            while "READY" not in info:
                line = (await proc.stdout.readline()).decode().strip()  # type: ignore[union-attr]
                assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                key, _, value = line.partition("=")
                info[key] = value
        assert info["REST_URL"].startswith("http://127.0.0.1:") and info["WS_URL"].startswith("ws://127.0.0.1:")
        assert (info["API_KEY"], info["API_SECRET"], info["SPEED"]) == ("cli-key", "cli-secret", "600")
        client = BinanceTestClient(info["REST_URL"], info["API_KEY"], info["API_SECRET"])
        try:
            await client.sync_time()
            _, t1 = await client.request("GET", "/fapi/v1/time")
            await asyncio.sleep(0.3)
            _, t2 = await client.request("GET", "/fapi/v1/time")
            assert t2["serverTime"] > t1["serverTime"] >= int(info["SIM_START_MS"])  # the clock runs
            await client.sync_time()
            status, bal = await client.request("GET", "/fapi/v3/balance", signed=True)
            assert status == 200 and bal[0]["balance"] == "2500.00000000"
        finally:
            await client.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rc = await proc.wait()
    assert rc == 0


async def test_standalone_manual_clock_with_admin_advance(data_dir: Path) -> None:
    import aiohttp

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", "sim", "--symbols", "ETHUSDT", "--speed", "0", "--admin",
        "--data-dir", str(data_dir), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        info: dict[str, str] = {}
        async with asyncio.timeout(30):
            while "READY" not in info:
                line = (await proc.stdout.readline()).decode().strip()  # type: ignore[union-attr]
                assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                key, _, value = line.partition("=")
                info[key] = value
        assert len(info["API_KEY"]) == 64 and len(info["API_SECRET"]) == 64  # random pair when not given
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{info['REST_URL']}/fapi/v1/time") as r:
                before = (await r.json())["serverTime"]
            assert before == int(info["SIM_START_MS"])  # the manual clock stands still
            async with session.post(f"{info['REST_URL']}/sim/admin/advance", json={"seconds": 120}) as r:
                assert (await r.json())["now_ms"] == before + 120_000
            async with session.get(f"{info['REST_URL']}/fapi/v1/time") as r:
                assert (await r.json())["serverTime"] == before + 120_000
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            rc = await proc.wait()
    assert rc == 0


def test_bad_flags_exit_2_with_the_key_named(data_dir: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "main.py", "sim", "--balance", "-5", "--data-dir", str(data_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "sim.balance_usdt" in done.stderr and done.stdout == ""
