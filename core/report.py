"""The session report: ``report.json`` (everything, machine-readable) and ``report.html``.

The engine accumulates a ``SessionRecord`` while it runs (and snapshots it); at every exit —
including a crash, from the last snapshot — ``write_report`` turns it into the two files.
``report.json`` holds the series the page is drawn from, so ``render_html(load_report(dir))``
re-renders a report without the session (``python main.py report SESSION_DIR``).

Money stays Decimal until it is written (as strings, exactly); ratios are floats.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.performance import (
    drawdown_series,
    max_drawdown,
    minute_closes,
    percentiles,
    returns,
    sharpe,
    sortino,
    trade_stats,
)
from core.types import Side

REPORT_SCHEMA = 1
MAX_SERIES_POINTS = 2000  # per series in report.json: enough for a chart, bounded for a long session


class PriceSeries(Sequence[tuple[int, float]]):
    """Timed samples, (time ms, value) pairs — a symbol's chart prices, the equity curve — held
    as two typed arrays.

    16 bytes a point instead of ~63 for a list of tuples (tracemalloc): 50 symbols ×
    ``MAX_SERIES_POINTS`` points are 1.6 MB instead of ~6.3 MB, a large part of the engine's RSS
    growth over a 48 h-equivalent replay (bench/soak.py) while the series filled. The equity
    curve (a sample a minute, every one kept: Sharpe and Sortino are computed on it) grows
    with the session's length, 23 kB a day this way instead of ~170 kB. Reads like a list of
    tuples (index, slice, iterate, compare)."""

    __slots__ = ("_times", "_prices")

    def __init__(self) -> None:
        self._times = array("q")
        self._prices = array("d")

    def append(self, point: tuple[int, float]) -> None:
        self._times.append(point[0])
        self._prices.append(point[1])

    def drop_every_other(self) -> None:
        """Keep points 0, 2, 4, … (the first one is never lost)."""
        del self._times[1::2]
        del self._prices[1::2]

    def __len__(self) -> int:
        return len(self._times)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(zip(self._times[index], self._prices[index], strict=True))
        return (self._times[index], self._prices[index])

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self._times, self._prices, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PriceSeries | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] - mutable

    def __repr__(self) -> str:
        return f"PriceSeries({list(self)!r})"


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One closed bracket, as the report shows it. ``funding`` is signed (+ received)."""

    bracket_id: str
    symbol: str
    side: Side
    quantity: Decimal
    entry_time_ms: int
    entry_price: Decimal
    exit_time_ms: int
    exit_price: Decimal
    exit_reason: str
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal = Decimal(0)
    confidence: float = 0.0
    votes: tuple[tuple[str, float], ...] = ()

    @property
    def net_pnl(self) -> Decimal:
        return self.gross_pnl - self.fees + self.funding


@dataclass
class SessionRecord:
    """What a session accumulates for its report (mutable, owned by the engine)."""

    session_id: str
    mode: str
    config_hash: str
    symbols: list[str]
    started_ms: int
    starting_balance: Decimal
    on_exit: str = "flatten"
    ended_ms: int | None = None
    exit_reason: str = ""
    crashed: bool = False
    final_balance: Decimal | None = None
    fees_total: Decimal = Decimal(0)
    funding_total: Decimal = Decimal(0)
    trades: list[TradeRecord] = field(default_factory=list)
    equity: list[tuple[int, float]] | PriceSeries = field(default_factory=PriceSeries)  # (time ms, equity)
    prices: dict[str, Sequence[tuple[int, float]]] = field(default_factory=dict)  # sample_price: PriceSeries
    skip_reasons: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    breaker_events: list[dict[str, Any]] = field(default_factory=list)
    latencies_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    open_positions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # how the stop went: policy applied, urgent (second signal), settle wait used and allowed
    shutdown: dict[str, Any] = field(default_factory=dict)
    _price_samples: dict[str, int] = field(default_factory=dict, repr=False)  # offered per symbol
    _price_strides: dict[str, int] = field(default_factory=dict, repr=False)  # samples per kept point

    def sample_price(self, symbol: str, time_ms: int, price: float) -> None:
        """One price sample for the symbol's chart, kept within ``MAX_SERIES_POINTS`` points.

        The report shows at most MAX_SERIES_POINTS per series, so keeping every sample of a
        long session only grows memory (50 symbols × one a minute ≈ 8 MB a day). When the
        series is full every other point is dropped and from then on only every other sample
        is kept: between half and all of MAX_SERIES_POINTS points, evenly spaced, the first
        one never lost.
        """
        points = self.prices.get(symbol)
        if not isinstance(points, PriceSeries):  # first sample (or a series set by hand: carried over)
            series = PriceSeries()
            for point in points or ():
                series.append(point)
            points = self.prices[symbol] = series
        offered = self._price_samples.get(symbol, 0)
        self._price_samples[symbol] = offered + 1
        stride = self._price_strides.get(symbol, 1)
        if offered % stride:
            return
        points.append((time_ms, price))
        if len(points) >= MAX_SERIES_POINTS:
            points.drop_every_other()
            self._price_strides[symbol] = 2 * stride


# ----------------------------------------------------------------------------- build


def _thin(points: Sequence[tuple[int, float]], limit: int = MAX_SERIES_POINTS) -> list[tuple[int, float]]:
    """Keep at most ``limit`` points, always the first and the last."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def _trade_doc(t: TradeRecord) -> dict[str, Any]:
    return {
        "bracket_id": t.bracket_id,
        "symbol": t.symbol,
        "side": t.side.value,
        "quantity": str(t.quantity),
        "entry_time_ms": t.entry_time_ms,
        "entry_price": str(t.entry_price),
        "exit_time_ms": t.exit_time_ms,
        "exit_price": str(t.exit_price),
        "exit_reason": t.exit_reason,
        "gross_pnl": str(t.gross_pnl),
        "fees": str(t.fees),
        "funding": str(t.funding),
        "net_pnl": str(t.net_pnl),
        "confidence": round(t.confidence, 6),
        "votes": [{"sensor": s, "weight": round(w, 6)} for s, w in t.votes],
    }


def _dec(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _attribution(trades: Sequence[TradeRecord]) -> tuple[dict[str, Any], dict[str, Any]]:
    per_symbol: dict[str, dict[str, Any]] = {}
    for t in trades:
        row = per_symbol.setdefault(t.symbol, {"trades": 0, "wins": 0, "net_pnl": Decimal(0), "fees": Decimal(0)})
        row["trades"] += 1
        row["wins"] += int(t.net_pnl > 0)
        row["net_pnl"] += t.net_pnl
        row["fees"] += t.fees
    # Each trade's net PnL is shared among its voters in proportion to their weights.
    per_sensor: dict[str, dict[str, Any]] = {}
    for t in trades:
        total = sum(w for _, w in t.votes)
        for sensor, weight in t.votes:
            row = per_sensor.setdefault(sensor, {"trades": 0, "wins": 0, "net_pnl": Decimal(0)})
            row["trades"] += 1
            row["wins"] += int(t.net_pnl > 0)
            if total > 0:
                row["net_pnl"] += t.net_pnl * Decimal(repr(weight / total))
    for table in (per_symbol, per_sensor):
        for row in table.values():
            row["win_rate"] = row["wins"] / row["trades"] if row["trades"] else None
            row["net_pnl"] = str(row["net_pnl"].quantize(Decimal("0.00000001")))
            if "fees" in row:
                row["fees"] = str(row["fees"])
    return per_symbol, dict(sorted(per_sensor.items(), key=lambda kv: -abs(Decimal(kv[1]["net_pnl"]))))


def build_report(record: SessionRecord) -> dict[str, Any]:
    """The report document (JSON-safe: Decimals as strings)."""
    trades = sorted(record.trades, key=lambda t: t.exit_time_ms)
    stats = trade_stats(
        [t.net_pnl for t in trades], [t.gross_pnl for t in trades], [t.fees for t in trades], [t.funding for t in trades]
    )
    equity = sorted(record.equity)
    values = [v for _, v in equity]
    closes = minute_closes(equity)
    rets = returns(closes)
    final = record.final_balance if record.final_balance is not None else record.starting_balance
    ended = record.ended_ms if record.ended_ms is not None else (equity[-1][0] if equity else record.started_ms)
    per_symbol, per_sensor = _attribution(trades)
    drawdowns = drawdown_series(values)
    return {
        "schema": REPORT_SCHEMA,
        "session_id": record.session_id,
        "mode": record.mode,
        "config_hash": record.config_hash,
        "symbols": record.symbols,
        "on_exit": record.on_exit,
        "start_ms": record.started_ms,
        "end_ms": ended,
        "duration_s": round((ended - record.started_ms) / 1000, 3),
        "exit_reason": record.exit_reason,
        "crashed": record.crashed,
        "starting_balance": str(record.starting_balance),
        "final_balance": str(final),
        "pnl": {
            "gross": str(stats.gross_pnl),
            "net": str(final - record.starting_balance),
            "net_of_trades": str(stats.net_pnl),
            "fees": str(record.fees_total),
            "funding": str(record.funding_total),
        },
        "stats": {
            "trades": stats.trades,
            "wins": stats.wins,
            "losses": stats.losses,
            "win_rate": stats.win_rate,
            "profit_factor": stats.profit_factor,
            "expectancy": _dec(stats.expectancy),
            "best_trade": _dec(stats.best),
            "worst_trade": _dec(stats.worst),
            "max_drawdown": max_drawdown(values),
            "sharpe": sharpe(rets),
            "sortino": sortino(rets),
            "equity_minutes": len(closes),
        },
        "trades": [_trade_doc(t) for t in trades],
        "per_symbol": per_symbol,
        "per_sensor": per_sensor,
        "skip_reasons": dict(sorted(record.skip_reasons.items(), key=lambda kv: -kv[1])),
        "errors": record.errors[-500:],
        "breaker_events": record.breaker_events[-500:],
        "latency_s": {name: percentiles(samples) for name, samples in sorted(record.latencies_s.items())},
        "unprotected_s": percentiles(record.latencies_s.get("unprotected", [])),
        "open_positions_at_exit": record.open_positions,
        "shutdown": record.shutdown,
        "notes": record.notes,
        "series": {
            "equity": _thin(equity),
            "drawdown": _thin(list(zip([t for t, _ in equity], drawdowns, strict=True))),
            "prices": {s: _thin(p) for s, p in sorted(record.prices.items())},
        },
    }


# ------------------------------------------------------------------------------ files


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(record: SessionRecord, session_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.html atomically; returns both paths."""
    from core.report_html import render_html

    doc = build_report(record)
    json_path = session_dir / "report.json"
    html_path = session_dir / "report.html"
    _atomic_write(json_path, orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str))
    _atomic_write(html_path, render_html(doc).encode("utf-8"))
    return json_path, html_path


def load_report(session_dir: Path) -> Mapping[str, Any]:
    return orjson.loads((session_dir / "report.json").read_bytes())
