"""Helpers for the fast-replay parity tests: short real datasets, both replays, the venue's truth."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.session_helpers import REPO, env

SUFFIXES = ("-1m.csv.gz", "-8h-funding.csv.gz", "-8h-markprice.csv.gz")

# Runs the event-driven replay in-process and, when the venue closes, records what the
# simulated exchange itself booked (wallet and every fill's commission): the ground truth
# both replays are held to. It observes the real run; it changes nothing in it.
ENGINE_DRIVER = '''
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from config.loader import load_settings
from config.secrets import Secrets
from exchanges.sim.local import LocalExchange

truth = {}
_close = LocalExchange.close

async def close(self):
    eng = self.venue.engine
    truth["wallet"] = str(eng.account.wallet)
    truth["fills"] = [[eng.orders[t.order_id].client_order_id, str(t.trade.commission)] for t in eng.trades]
    await _close(self)

LocalExchange.close = close

if __name__ == "__main__":
    from main import compose_and_run
    s = load_settings(Path(sys.argv[2]), overrides={"session.mode": "replay", "session.data_dir": Path(sys.argv[3]),
                                                    "metrics.enabled": False})
    code = asyncio.run(compose_and_run(s, Secrets(), duration_s=None, progress=False))
    Path(sys.argv[4]).write_text(json.dumps(truth))
    sys.exit(code)
'''


def short_dataset(source: Path, target: Path, symbols: list[str], minutes: int) -> Path:
    """The first ``minutes`` of real recorded data (from the latest first bar of ``symbols``),
    copied line by line into ``target`` (a temporary folder, never the repository)."""
    target.mkdir(parents=True, exist_ok=True)
    starts = []
    for s in symbols:
        with gzip.open(source / f"{s}-1m.csv.gz", "rt") as f:
            f.readline()
            starts.append(int(f.readline().split(",")[0]))
    end = max(starts) + minutes * 60_000
    for s in symbols:
        for suffix in SUFFIXES:
            with gzip.open(source / f"{s}{suffix}", "rt") as f, gzip.open(target / f"{s}{suffix}", "wt") as g:
                g.write(f.readline())
                for line in f:
                    if int(line.split(",", 1)[0]) < end:
                        g.write(line)
    return target


def run_engine(work: Path, config: Path, data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event-driven replay in a real process: (report.json, venue truth)."""
    work.mkdir(parents=True, exist_ok=True)
    driver = work / "engine_driver.py"
    driver.write_text(ENGINE_DRIVER)
    truth = work / "truth.json"
    proc = subprocess.run([sys.executable, str(driver), str(REPO), str(config), str(data_dir), str(truth)],
                          cwd=work, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _report(work), json.loads(truth.read_text())


def run_fast(work: Path, config: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, str(REPO / "main.py"), "replay", "--fast", "--config", str(config),
                           "--data-dir", str(data_dir), *extra],
                          cwd=work, env=env(), capture_output=True, text=True, timeout=300)


def fast_report(work: Path, config: Path, data_dir: Path) -> dict[str, Any]:
    proc = run_fast(work, config, data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _report(work)


def _report(work: Path) -> dict[str, Any]:
    dirs = sorted((work / "sessions").iterdir())
    assert len(dirs) == 1, dirs
    assert (dirs[0] / "report.html").stat().st_size > 0
    return json.loads((dirs[0] / "report.json").read_text())


def venue_fees(truth: dict[str, Any], bracket_id: str) -> Decimal:
    """Commissions the venue booked on the orders of one bracket (client ids start with its id,
    followed by the leg letter)."""
    total = Decimal(0)
    for cid, commission in truth["fills"]:
        if cid.startswith(bracket_id) and len(cid) > len(bracket_id) and cid[len(bracket_id)].isupper():
            total += Decimal(commission)
    return total


EXACT_FIELDS = ("symbol", "side", "quantity", "entry_time_ms", "entry_price", "exit_time_ms", "exit_price",
                "exit_reason", "gross_pnl", "funding")
DECIMAL_FIELDS = frozenset({"quantity", "entry_price", "exit_price", "gross_pnl", "funding"})


def assert_same_trades(engine: dict[str, Any], fast: dict[str, Any], truth: dict[str, Any]) -> None:
    """Trade by trade, exact Decimal: everything the engine reports, and the fees the venue booked."""
    te, tf = engine["trades"], fast["trades"]
    assert len(te) == len(tf), (len(te), len(tf))
    for k, (e, f) in enumerate(zip(te, tf, strict=True)):
        for name in EXACT_FIELDS:
            ev, fv = e[name], f[name]
            same = Decimal(ev) == Decimal(fv) if name in DECIMAL_FIELDS else ev == fv
            assert same, f"trade {k} {name}: engine {ev} fast {fv}"
        assert Decimal(f["fees"]) == venue_fees(truth, e["bracket_id"]), f"trade {k} fees"
        if e["exit_reason"] != "flatten":
            assert Decimal(e["fees"]) == Decimal(f["fees"]), f"trade {k} fees: engine {e['fees']} fast {f['fees']}"
        assert [v["sensor"] for v in e["votes"]] == [v["sensor"] for v in f["votes"]]
    assert Decimal(fast["final_balance"]) == Decimal(truth["wallet"])
    assert engine["skip_reasons"] == fast["skip_reasons"]
