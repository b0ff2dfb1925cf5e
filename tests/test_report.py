"""Session report: statistics checked by hand, report.json contents, self-contained HTML."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from core.history import load_candles
from core.performance import drawdown_series, max_drawdown, minute_closes, percentiles, returns, sharpe, sortino
from core.report import SessionRecord, TradeRecord, build_report, load_report, write_report
from core.report_html import render_html
from core.types import Side


def trade(i: int, gross: str, fees: str, funding: str = "0", votes=(("a", 0.75), ("b", 0.25)), symbol="BTCUSDT") -> TradeRecord:
    return TradeRecord(
        f"br{i}", symbol, Side.BUY, D("0.01"), 1_000 * i, D("100"), 1_000 * i + 500, D("101"),
        "take_profit", D(gross), D(fees), D(funding), 0.5, votes,
    )


def test_trade_stats_by_hand() -> None:
    rec = SessionRecord("s", "replay", "h", ["BTCUSDT"], 0, D("1000"))
    rec.trades = [trade(1, "10", "1"), trade(2, "-4", "1"), trade(3, "2", "0.5", "-0.5"), trade(4, "-1", "1", symbol="ETHUSDT")]
    rec.final_balance = D("1004")
    doc = build_report(rec)
    # net: 9, -5, 1, -2 → wins 10, losses -7
    assert [t["net_pnl"] for t in doc["trades"]] == ["9", "-5", "1.0", "-2"]
    assert doc["stats"]["trades"] == 4 and doc["stats"]["wins"] == 2
    assert doc["stats"]["win_rate"] == 0.5
    assert doc["stats"]["profit_factor"] == pytest.approx(10 / 7)
    assert D(doc["stats"]["expectancy"]) == D("0.75")
    assert doc["pnl"]["net"] == "4" and doc["pnl"]["gross"] == "7"
    assert doc["per_symbol"]["ETHUSDT"] == {"trades": 1, "wins": 0, "net_pnl": "-2.00000000", "fees": "1", "win_rate": 0.0}
    # sensor a takes 3/4 of each trade: 0.75 × (9 − 5 + 1 − 2) = 2.25
    assert D(doc["per_sensor"]["a"]["net_pnl"]) == D("2.25")
    assert D(doc["per_sensor"]["b"]["net_pnl"]) == D("0.75")


def test_equity_statistics_by_hand() -> None:
    points = [(0, 100.0), (30_000, 101.0), (60_000, 110.0), (180_000, 99.0), (240_000, 104.5)]
    closes = minute_closes(points)
    assert closes == [101.0, 110.0, 110.0, 99.0, 104.5]  # minute 2 carries 110 forward
    rets = returns(closes)
    assert rets == pytest.approx([0.0891089, 0.0, -0.1, 0.0555556], rel=1e-5)
    mean = sum(rets) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / 3)
    assert sharpe(rets) == pytest.approx(mean / sd * math.sqrt(525_600))
    assert sortino(rets) == pytest.approx(mean / math.sqrt(0.01 / 4) * math.sqrt(525_600))
    assert max_drawdown([100, 120, 90, 130, 117]) == pytest.approx(0.25)
    assert drawdown_series([100, 80]) == [0.0, 0.2]
    assert sharpe([0.01, 0.01, 0.01]) is None
    p = percentiles([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (p["p50"], p["p99"], p["max"], p["count"]) == (3.0, 5.0, 5.0, 5.0)


def real_record(data_dir: Path) -> SessionRecord:
    s = load_candles(data_dir / "futures-2023" / "ETHUSDT-1m.csv.gz").slice(0, 300)
    rec = SessionRecord("sess-<script>", "paper", "cfg", ["ETHUSDT"], int(s.open_time[0]), D("5000"))
    rec.prices["ETHUSDT"] = [(int(s.open_time[i]), float(s.close[i])) for i in range(len(s))]
    for k in range(0, 280, 40):
        e, x = s.candle(k), s.candle(k + 10)
        gross = (x.close - e.close) * D("0.5")
        rec.trades.append(TradeRecord(f"b{k}", "ETHUSDT", Side.BUY, D("0.5"), e.open_time_ms, e.close, x.open_time_ms,
                                      x.close, "stop_loss" if gross < 0 else "take_profit", gross, D("0.9"),
                                      votes=(("ema<b>", 1.0),)))
    balance = D("5000")
    for i in range(len(s)):
        t = int(s.open_time[i])
        rec.equity.append((t, float(balance + sum((tr.net_pnl for tr in rec.trades if tr.exit_time_ms <= t), D(0)))))
    rec.final_balance = balance + sum((t.net_pnl for t in rec.trades), D(0))
    rec.ended_ms = int(s.open_time[-1])
    rec.exit_reason = "duration"
    return rec


def test_report_files_roundtrip_and_escape(tmp_path: Path, data_dir: Path) -> None:
    rec = real_record(data_dir)
    json_path, html_path = write_report(rec, tmp_path)
    doc = orjson.loads(json_path.read_bytes())
    assert doc == load_report(tmp_path)
    assert D(doc["final_balance"]) - D(doc["starting_balance"]) == D(doc["pnl"]["net"])
    assert len(doc["trades"]) == 7
    page = html_path.read_text()
    assert page == render_html(doc)  # re-rendering from report.json gives the same page
    assert "<script>" not in page and "&lt;script&gt;" in page and "ema&lt;b&gt;" in page
    # self-contained: no external resources of any kind
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<svg") >= 5


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tmp_path: Path, data_dir: Path) -> None:
    _, html_path = write_report(real_record(data_dir), tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 5 and "Casino session" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", *flags, "--window-size=1000,1800", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=90, check=True)
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
