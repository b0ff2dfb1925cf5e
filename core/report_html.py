"""Render a report document as one self-contained HTML page (inline CSS and SVG, no network).

Charts: equity and drawdown over time, price per symbol with entry/exit markers, the
distribution of trade PnL, and per-sensor attribution. Everything is escaped; nothing is
fetched when the page opens.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

W, H = 920, 240
PAD_L, PAD_R, PAD_T, PAD_B = 70, 16, 14, 28

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:10px 12px}
.card .k{color:#5b6475;font-size:12px}.card .v{font-size:18px;font-weight:600}
.pos{color:#137333}.neg{color:#b3261e}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e4ea;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #eef0f3;text-align:right}th{background:#f0f2f5}
td:first-child,th:first-child{text-align:left}
svg{background:#fff;border:1px solid #e1e4ea;border-radius:8px;display:block;margin:6px 0}
.axis{stroke:#c5cad3;stroke-width:1}.grid{stroke:#eef0f3;stroke-width:1}
.lbl{fill:#5b6475;font-size:11px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e8f0fe;color:#174ea6;font-size:12px}
.badge.bad{background:#fce8e6;color:#b3261e}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _ts(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    if math.isinf(v):
        return "∞"
    return f"{v:,.{digits}f}"


def _signed_class(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return "pos" if v > 0 else "neg" if v < 0 else ""


def _scale(lo: float, hi: float, a: float, b: float):  # noqa: ANN202 - tiny local helper
    span = hi - lo or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _line_chart(
    series: Sequence[Sequence[float]], *, title: str, color: str = "#1a73e8", fill: bool = False,
    markers: Sequence[tuple[float, float, str, str]] = (), fmt: str = "{:,.2f}",
) -> str:
    """A time series as SVG; ``markers`` are (t, y, shape, color) with shape '^', 'v' or 'o'."""
    if len(series) < 2:
        return f'<p class="sub">{_e(title)}: not enough data.</p>'
    ts = [float(p[0]) for p in series]
    ys = [float(p[1]) for p in series]
    all_y = ys + [m[1] for m in markers]
    lo, hi = min(all_y), max(all_y)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    sx = _scale(ts[0], ts[-1], PAD_L, W - PAD_R)
    sy = _scale(lo, hi, H - PAD_B, PAD_T)
    pts = " ".join(f"{sx(t):.1f},{sy(y):.1f}" for t, y in zip(ts, ys, strict=True))
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{_e(title)}">']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = sy(v)
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="lbl" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(fmt.format(v))}</text>')
    for i in range(4):
        t = ts[0] + (ts[-1] - ts[0]) * i / 3
        parts.append(
            f'<text class="lbl" x="{sx(t):.1f}" y="{H - 8}" text-anchor="middle">{_e(_ts(int(t))[5:16])}</text>'
        )
    if fill:
        base = sy(max(lo, 0.0)) if lo <= 0 <= hi else H - PAD_B
        parts.append(
            f'<polygon fill="{color}" fill-opacity="0.18" stroke="none" '
            f'points="{sx(ts[0]):.1f},{base:.1f} {pts} {sx(ts[-1]):.1f},{base:.1f}"/>'
        )
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{pts}"/>')
    for t, y, shape, mcolor in markers:
        x, yy = sx(t), sy(y)
        if shape == "^":
            parts.append(f'<path d="M{x:.1f},{yy - 6:.1f} l5,9 h-10 z" fill="{mcolor}"/>')
        elif shape == "v":
            parts.append(f'<path d="M{x:.1f},{yy + 6:.1f} l5,-9 h-10 z" fill="{mcolor}"/>')
        else:
            parts.append(f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="4" fill="none" stroke="{mcolor}" stroke-width="2"/>')
    parts.append(f'<line class="axis" x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{H - PAD_B}"/></svg>')
    return "".join(parts)


def _bar_chart(items: Sequence[tuple[str, float]], *, title: str, fmt: str = "{:,.2f}") -> str:
    """Horizontal bars around zero (green positive, red negative)."""
    if not items:
        return f'<p class="sub">{_e(title)}: no data.</p>'
    row_h = 22
    height = PAD_T + PAD_B + row_h * len(items)
    label_w = 190
    lo = min(0.0, min(v for _, v in items))
    hi = max(0.0, max(v for _, v in items))
    sx = _scale(lo, hi if hi != lo else lo + 1, label_w, W - 80)
    parts = [f'<svg viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{_e(title)}">']
    zero = sx(0.0)
    for i, (name, v) in enumerate(items):
        y = PAD_T + i * row_h
        x0, x1 = sorted((zero, sx(v)))
        color = "#137333" if v >= 0 else "#b3261e"
        parts.append(f'<text class="lbl" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(name[:30])}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(1.0, x1 - x0):.1f}" height="{row_h - 8}" fill="{color}"/>')
        parts.append(f'<text class="lbl" x="{max(x1, zero) + 6:.1f}" y="{y + 15}">{_e(fmt.format(v))}</text>')
    parts.append(f'<line class="axis" x1="{zero:.1f}" x2="{zero:.1f}" y1="{PAD_T}" y2="{height - PAD_B}"/></svg>')
    return "".join(parts)


def _histogram(values: Sequence[float], *, title: str, bins: int = 20) -> str:
    if not values:
        return f'<p class="sub">{_e(title)}: no trades.</p>'
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(counts)
    sx = _scale(lo, hi, PAD_L, W - PAD_R)
    sy = _scale(0, top, H - PAD_B, PAD_T)
    parts = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{_e(title)}">']
    for i, c in enumerate(counts):
        a = lo + i * width
        x0, x1 = sx(a), sx(a + width)
        color = "#137333" if a + width / 2 >= 0 else "#b3261e"
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{sy(c):.1f}" width="{max(1.0, x1 - x0 - 2):.1f}" '
            f'height="{H - PAD_B - sy(c):.1f}" fill="{color}" fill-opacity="0.8"/>'
        )
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(f'<text class="lbl" x="{sx(v):.1f}" y="{H - 8}" text-anchor="middle">{v:,.2f}</text>')
    parts.append(f'<text class="lbl" x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end">{top}</text>')
    parts.append(f'<line class="axis" x1="{PAD_L}" x2="{W - PAD_R}" y1="{H - PAD_B}" y2="{H - PAD_B}"/></svg>')
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = classes[i] if i < len(classes) else ""
            css = f' class="{_signed_class(cell)}"' if cls == "signed" else ""
            cells.append(f"<td{css}>{_e(cell) if not isinstance(cell, _Raw) else cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML inside a table cell."""


def _card(key: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><div class="k">{_e(key)}</div><div class="v {cls}">{_e(value)}</div></div>'


def _pct(x: Any) -> str:
    return "—" if x is None else f"{float(x) * 100:.2f} %"


def render_html(doc: Mapping[str, Any]) -> str:
    stats = doc["stats"]
    pnl = doc["pnl"]
    series = doc["series"]
    trades = doc["trades"]
    status = '<span class="badge bad">crashed</span>' if doc.get("crashed") else '<span class="badge">completed</span>'
    cards = [
        _card("Net PnL (USDT)", _num(pnl["net"]), _signed_class(pnl["net"])),
        _card("Final balance", _num(doc["final_balance"])),
        _card("Trades", str(stats["trades"])),
        _card("Win rate", _pct(stats["win_rate"])),
        _card("Profit factor", _num(stats["profit_factor"])),
        _card("Expectancy / trade", _num(stats["expectancy"], 4)),
        _card("Max drawdown", _pct(stats["max_drawdown"])),
        _card("Sharpe (ann.)", _num(stats["sharpe"])),
        _card("Sortino (ann.)", _num(stats["sortino"])),
        _card("Fees", _num(pnl["fees"], 4)),
        _card("Funding", _num(pnl["funding"], 4), _signed_class(pnl["funding"])),
        _card("Unprotected p99 (s)", _num(doc["unprotected_s"].get("p99"), 4)),
    ]
    price_charts = []
    for symbol, points in series["prices"].items():
        markers: list[tuple[float, float, str, str]] = []
        for t in trades:
            if t["symbol"] != symbol:
                continue
            win = float(t["net_pnl"]) > 0
            markers.append((t["entry_time_ms"], float(t["entry_price"]), "^" if t["side"] == "BUY" else "v", "#1a73e8"))
            markers.append((t["exit_time_ms"], float(t["exit_price"]), "o", "#137333" if win else "#b3261e"))
        price_charts.append(f"<h3>{_e(symbol)}</h3>" + _line_chart(points, title=f"{symbol} price", color="#5f6368", markers=markers))
    sensor_items = [(name, float(row["net_pnl"])) for name, row in list(doc["per_sensor"].items())[:25]]
    trade_rows = [
        (
            t["bracket_id"], t["symbol"], t["side"], t["quantity"], _ts(t["entry_time_ms"]), t["entry_price"],
            _ts(t["exit_time_ms"]), t["exit_price"], t["exit_reason"], _num(t["fees"], 4), _num(t["net_pnl"], 4),
            ", ".join(v["sensor"] for v in t["votes"][:6]) + (" …" if len(t["votes"]) > 6 else ""),
        )
        for t in trades
    ]
    symbol_rows = [
        (s, r["trades"], _pct(r["win_rate"]), _num(r["fees"], 4), _num(r["net_pnl"], 4))
        for s, r in doc["per_symbol"].items()
    ]
    latency_rows = [
        (name, int(p["count"] or 0), _num(p["p50"], 6), _num(p["p90"], 6), _num(p["p99"], 6), _num(p["max"], 6))
        for name, p in doc["latency_s"].items()
    ]
    skip_rows = list(doc["skip_reasons"].items())
    open_rows = [
        (p.get("symbol"), p.get("side", ""), p.get("quantity"), p.get("entry_price"), p.get("stop_loss", ""),
         p.get("take_profit", ""))
        for p in doc["open_positions_at_exit"]
    ]
    error_rows = [(_ts(e.get("time_ms")), e.get("kind", ""), e.get("message", "")) for e in doc["errors"][-50:]]
    sections = [
        f"<h1>Casino session {_e(doc['session_id'])} {status}</h1>",
        f'<div class="sub">mode <b>{_e(doc["mode"])}</b> · symbols {_e(", ".join(doc["symbols"]))} · '
        f"{_e(_ts(doc['start_ms']))} → {_e(_ts(doc['end_ms']))} UTC ({_num(doc['duration_s'], 0)} s) · "
        f"exit: {_e(doc['exit_reason'] or '—')} · on exit: {_e(doc['on_exit'])}{_urgent(doc)} · "
        f"config {_e(doc['config_hash'][:12])}</div>",
        f'<div class="cards">{"".join(cards)}</div>',
        "<h2>Equity</h2>", _line_chart(series["equity"], title="Equity (USDT)"),
        "<h2>Drawdown</h2>",
        _line_chart([(t, -d * 100) for t, d in series["drawdown"]], title="Drawdown (%)", color="#b3261e", fill=True, fmt="{:.2f} %"),
        "<h2>Prices with entries (▲ long, ▼ short) and exits (○ green win, red loss)</h2>", *price_charts,
        "<h2>Trade PnL distribution</h2>", _histogram([float(t["net_pnl"]) for t in trades], title="Net PnL per trade"),
        "<h2>Sensor attribution (net PnL shared by vote weight)</h2>", _bar_chart(sensor_items, title="Sensor attribution"),
        "<h2>Per symbol</h2>", _table(["symbol", "trades", "win rate", "fees", "net PnL"], symbol_rows, ["", "", "", "", "signed"]),
        "<h2>Trades</h2>",
        _table(["bracket", "symbol", "side", "qty", "entry time", "entry", "exit time", "exit", "reason", "fees", "net PnL", "voters"],
               trade_rows, ["", "", "", "", "", "", "", "", "", "", "signed", ""]),
        "<h2>Skip reasons</h2>", _table(["reason", "count"], skip_rows),
        "<h2>Latency (seconds)</h2>", _table(["what", "count", "p50", "p90", "p99", "max"], latency_rows),
    ]
    if open_rows:
        sections += ["<h2>Positions left open (exit policy keep)</h2>", _table(["symbol", "side", "quantity", "entry", "stop-loss", "take-profit"], open_rows)]
    if error_rows:
        sections += ["<h2>Errors</h2>", _table(["time", "kind", "message"], error_rows)]
    if doc.get("notes"):
        sections += ["<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in doc["notes"]) + "</ul>"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Casino report {_e(doc['session_id'])}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(sections)}</main></body></html>"
    )


def _urgent(doc: Mapping[str, Any]) -> str:
    """' (flattened at once: second SIGTERM)' when a second stop request cut the shutdown short."""
    shutdown = doc.get("shutdown") or {}  # reports written before this field existed lack it
    if not shutdown.get("urgent"):
        return ""
    return f" (flattened at once: second {_e(shutdown.get('second_request') or 'stop request')})"
