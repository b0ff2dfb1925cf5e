"""End-to-end sessions in real subprocesses: `python main.py run|replay` on real recorded data.

Each test runs the real CLI: the simulated Binance (in-process on loopback, or a separate
`python main.py sim` process), the real connector, sensor worker processes, the croupier,
signals, Prometheus and the report.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from session_helpers import (
    REPO,
    env,
    free_port,
    get,
    report,
    session_dir,
    start_session,
    status,
    stop,
    wait_for,
    wait_ready,
    write_config,
)
from sim_client import BinanceTestClient

pytestmark = pytest.mark.slow


def _sim_process(tmp: Path, cfg: Path, speed: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "sim", "--config", str(cfg), "--speed", str(speed),
         "--symbols", "BTCUSDT,ETHUSDT"],
        cwd=tmp, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    info: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition("=")
        info[key] = value
        if key == "READY":
            break
    assert "REST_URL" in info, proc.stderr.read() if proc.stderr else ""
    return proc, info


async def _account(info: dict[str, str]) -> dict[str, object]:
    client = BinanceTestClient(info["REST_URL"], info["API_KEY"], info["API_SECRET"])
    try:
        await client.sync_time()
        _, balances = await client.request("GET", "/fapi/v3/balance", signed=True)
        _, income = await client.request("GET", "/fapi/v1/income", {"limit": 1000}, signed=True)
        _, positions = await client.request("GET", "/fapi/v3/positionRisk", signed=True)
        _, algos = await client.request("GET", "/fapi/v1/openAlgoOrders", signed=True)
        _, orders = await client.request("GET", "/fapi/v1/openOrders", signed=True)
    finally:
        await client.close()
    return {"balances": balances, "income": income, "positions": positions, "algos": algos, "orders": orders}


def test_paper_session_against_a_separate_simulator_matches_its_account(tmp_path: Path) -> None:
    """`run --exchange-url` against `main.py sim`: trades happen, the session ends by itself, and the
    report agrees with the simulator's own books (balance, realized PnL, fees, funding)."""
    cfg = write_config(tmp_path)
    sim, info = _sim_process(tmp_path, cfg, speed=120)
    try:
        port = free_port()
        session = start_session(
            tmp_path, "run", "--config", str(cfg), "--exchange-url", info["REST_URL"], "--stream-url",
            info["WS_URL"], "--duration", "45s", "--metrics-addr", f"127.0.0.1:{port}",
            extra_env={"CASINO_API_KEY": info["API_KEY"], "CASINO_API_SECRET": info["API_SECRET"]},
        )
        wait_ready(port, session)
        wait_for(lambda: status(port)["bars_processed"] >= 20, 60, "live bars")
        code, metrics_text = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        families = {f.name: f for f in text_string_to_metric_families(metrics_text)}
        for name in ("casino_balance_usdt", "casino_equity_usdt", "casino_positions_open",
                     "casino_decision_latency_seconds", "casino_unprotected_seconds", "casino_skips",
                     "casino_rate_limit_used", "casino_event_loop_lag_seconds", "casino_time_to_protect_seconds",
                     "casino_decision_sensor_wait_seconds", "casino_bar_latency_seconds",
                     "casino_market_burst_candles"):
            assert name in families, name
        bars_seen = next(s.value for s in families["casino_bar_latency_seconds"].samples if s.name.endswith("_count"))
        assert bars_seen >= 1  # every live bar's candle → verdict latency is measured
        assert families["casino_balance_usdt"].samples[0].value > 0
        out, err = session.communicate(timeout=120)
        assert session.returncode == 0, err[-3000:]
        account = asyncio.run(_account(info))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    doc = report(tmp_path)
    assert doc["exit_reason"] == "duration" and not doc["crashed"]
    assert doc["stats"]["trades"] >= 1, doc["skip_reasons"]
    latency = doc["latency_s"]
    # the decision latency split: sensor wait + the engine's own share, one sample each per entry
    assert latency["decision"]["count"] == latency["decision_sensors"]["count"] == latency["decision_engine"]["count"] >= 1
    assert latency["decision_engine"]["max"] <= latency["decision"]["max"]
    assert latency["bar"]["count"] >= 20 and latency["bar_engine"]["max"] <= latency["bar"]["max"]
    # time to protect, in real seconds: every traded bracket was protected once
    assert latency["protect"]["count"] >= 1 and 0 < latency["protect"]["p50"] <= latency["protect"]["max"]
    wallet = next(Decimal(b["balance"]) for b in account["balances"] if b["asset"] == "USDT")
    assert Decimal(doc["final_balance"]) == wallet
    by_type: dict[str, Decimal] = {}
    for row in account["income"]:
        by_type[row["incomeType"]] = by_type.get(row["incomeType"], Decimal(0)) + Decimal(row["income"])
    assert Decimal(doc["pnl"]["fees"]) == -by_type.get("COMMISSION", Decimal(0))
    assert Decimal(doc["pnl"]["funding"]) == by_type.get("FUNDING_FEE", Decimal(0))
    assert Decimal(doc["pnl"]["gross"]) == by_type.get("REALIZED_PNL", Decimal(0))
    assert Decimal(doc["pnl"]["net"]) == wallet - Decimal(doc["starting_balance"])
    # flatten on exit: nothing left open on the exchange
    assert all(Decimal(p["positionAmt"]) == 0 for p in account["positions"])
    assert account["algos"] == [] and account["orders"] == []
    assert (session_dir(tmp_path) / "report.html").stat().st_size > 5000


@pytest.mark.parametrize("policy", ["flatten", "keep"])
def test_sigterm_applies_the_exit_policy(tmp_path: Path, policy: str) -> None:
    # Wide stops and targets keep positions open long enough to be there at SIGTERM.
    cfg = write_config(tmp_path, "\n[croupier]\nstop_close_position = true\n")
    cfg.write_text(cfg.read_text().replace("tp_min_fraction = 0.002", "tp_min_fraction = 0.05")
                   .replace("tp_max_fraction = 0.004", "tp_max_fraction = 0.06")
                   .replace("sl_min_fraction = 0.002", "sl_min_fraction = 0.05")
                   .replace("sl_max_fraction = 0.004", "sl_max_fraction = 0.06"))
    port = free_port()
    session = start_session(tmp_path, "run", "--config", str(cfg), "--duration", "10m", "--speed", "120",
                            "--on-exit", policy, "--metrics-addr", f"127.0.0.1:{port}")
    wait_ready(port, session)
    wait_for(lambda: status(port)["croupier"].get("positions"), 90, "an open position")
    code, _, err = stop(session)
    assert code == 0, err[-3000:]
    doc = report(tmp_path)
    assert doc["exit_reason"] == "SIGTERM" and doc["on_exit"] == policy
    if policy == "flatten":
        assert doc["open_positions_at_exit"] == []
    else:
        assert doc["open_positions_at_exit"], "keep must list the positions left with their TP/SL"
        # each kept position still has its exchange-side stop (and target) listed
        assert all(p.get("stop_loss") and p.get("take_profit") for p in doc["open_positions_at_exit"])


def test_sigusr2_drains_and_writes_status(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    port = free_port()
    session = start_session(tmp_path, "run", "--config", str(cfg), "--duration", "10m", "--speed", "120",
                            "--metrics-addr", f"127.0.0.1:{port}")
    wait_ready(port, session)
    session.send_signal(signal.SIGUSR2)
    status_file = session_dir(tmp_path) / "status.json"
    wait_for(status_file.exists, 10, "status.json")
    drained = json.loads(status_file.read_text())
    assert drained["drain"] is True
    drain_ms = drained["time_ms"]
    bars = status(port)["bars_processed"]
    wait_for(lambda: status(port)["bars_processed"] >= bars + 30, 60, "bars while draining")
    # every bar came through the stream, the first one too (the bar closing as the simulator's
    # clock starts is published, not left as a hole to fetch over REST)
    code, metrics_text = get(f"http://127.0.0.1:{port}/metrics")
    backfilled = {f.name: f for f in text_string_to_metric_families(metrics_text)}["casino_backfilled_candles"]
    assert code == 200 and [s.value for s in backfilled.samples if s.name.endswith("_total")] == [0.0]
    code, _, err = stop(session)
    assert code == 0, err[-3000:]
    doc = report(tmp_path)
    # no entry after the drain began (one bar of grace for an order already in flight)
    assert all(t["entry_time_ms"] <= drain_ms + 60_000 for t in doc["trades"])
    assert doc["skip_reasons"].get("draining", 0) >= 1


def test_crash_writes_a_crashed_report_and_exits_4(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    session = start_session(tmp_path, "run", "--config", str(cfg), "--duration", "10m", "--speed", "120",
                            "--metrics-addr", f"127.0.0.1:{free_port()}",
                            extra_env={"CASINO_CRASH_AFTER_BARS": "15"})
    out, err = session.communicate(timeout=180)
    assert session.returncode == 4, err[-3000:]
    doc = report(tmp_path)
    assert doc["crashed"] is True and doc["exit_reason"].startswith("crashed")
    assert any(e["kind"] == "crash" and "injected crash" in e["message"] for e in doc["errors"])


def test_replay_on_real_data(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    session = start_session(tmp_path, "replay", "--config", str(cfg), "--duration", "6h",
                            "--metrics-addr", f"127.0.0.1:{free_port()}")
    out, err = session.communicate(timeout=300)
    assert session.returncode == 0, err[-3000:]
    doc = report(tmp_path)
    assert doc["mode"] == "replay" and doc["exit_reason"] == "duration"
    assert doc["stats"]["trades"] >= 1
    assert doc["end_ms"] - doc["start_ms"] >= 6 * 3600 * 1000 - 60_000
    assert Decimal(doc["pnl"]["net"]) == Decimal(doc["final_balance"]) - Decimal(doc["starting_balance"])
    # the offline commands read what the session left behind
    sdir = session_dir(tmp_path)
    status_out = subprocess.run([sys.executable, str(REPO / "main.py"), "status", "--state-dir", str(sdir / "state")],
                                cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
    assert status_out.returncode == 0, status_out.stderr
    closed = [t["bracket_id"] for t in doc["trades"]]
    assert all(bid in status_out.stdout for bid in closed)
    (sdir / "report.html").unlink()
    rerender = subprocess.run([sys.executable, str(REPO / "main.py"), "report", str(sdir)],
                              cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
    assert rerender.returncode == 0 and (sdir / "report.html").stat().st_size > 5000
