"""The settings model: one typed, validated tree, one section per component.

Rules (also written at the top of ``config/default.toml``):
- units live in names: ``*_s`` seconds, ``*_ms`` milliseconds, ``*_bps`` basis points,
  ``*_usdt`` quote currency;
- every other ratio is a fraction: 0.01 means 1 %;
- secrets never live here (see ``config/secrets.py``).

Each section forbids unknown keys, so a typo is an error that names the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _check_symbols(values: list[str]) -> list[str]:
    out = []
    for v in values:
        s = v.strip().upper()
        if not SYMBOL_RE.match(s):
            raise ValueError(f"{v!r} is not a symbol like BTCUSDT")
        out.append(s)
    if len(set(out)) != len(out):
        raise ValueError("symbols must not repeat")
    return out


class SessionSettings(Section):
    mode: Literal["paper", "replay", "testnet", "live"] = "paper"
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"], min_length=1, max_length=200)
    duration_s: float = Field(default=300.0, gt=0, le=30 * 24 * 3600)
    on_exit: Literal["flatten", "keep"] = "flatten"
    speed: float = Field(default=60.0, gt=0, le=1_000_000)
    data_dir: Path | None = None
    dataset: str = "futures-2023"
    state_dir: Path = Path("state-data")
    sessions_dir: Path = Path("sessions")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    shutdown_wait_s: float = Field(default=10.0, ge=0, le=600)
    # Live/paper: once a bar's first close frame is in, wait up to this long for the other
    # symbols' closes of that bar, so the bar is one burst (core/engine.py _complete_bar).
    burst_gather_ms: float = Field(default=20.0, ge=0, le=1000)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return _check_symbols(v)


class BreakerSettings(Section):
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    open_s: float = Field(default=60.0, gt=0, le=3600)
    half_open_probes: int = Field(default=3, ge=1, le=100)
    success_threshold: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _probes_cover_successes(self) -> BreakerSettings:
        if self.success_threshold > self.half_open_probes:
            raise ValueError(
                "success_threshold must not exceed half_open_probes "
                f"({self.success_threshold} > {self.half_open_probes}): the breaker could never close"
            )
        return self


class RetrySettings(Section):
    max_attempts: int = Field(default=4, ge=1, le=20)
    base_delay_s: float = Field(default=0.2, gt=0, le=60)
    max_delay_s: float = Field(default=5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySettings:
        if self.base_delay_s > self.max_delay_s:
            raise ValueError(f"base_delay_s ({self.base_delay_s}) must not exceed max_delay_s ({self.max_delay_s})")
        return self


class ExchangeSettings(Section):
    rest_url: str | None = None  # None = by mode (live / demo / the embedded simulator)
    stream_url: str | None = None
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    time_sync_interval_s: float = Field(default=300.0, gt=0, le=86400)
    time_sync_samples: int = Field(default=5, ge=1, le=20)
    max_streams_per_connection: int = Field(default=200, ge=1, le=1024)
    listen_key_keepalive_s: float = Field(default=1800.0, gt=0, le=3500)
    ws_rotate_s: float = Field(default=23.5 * 3600, gt=0, le=24 * 3600)
    ws_reconnect_max_delay_s: float = Field(default=30.0, gt=0, le=600)
    allow_withdrawals: bool = False
    # Spot API host serving GET /sapi/v1/account/apiRestrictions (key permissions); None = skip that check.
    spot_rest_url: str | None = None
    # Share of every rate-limit pool only protective orders and cancels may use.
    rate_limit_reserve_fraction: float = Field(default=0.1, ge=0, lt=1)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("rest_url", "stream_url", "spot_rest_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https?|wss?)://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s):// or ws(s):// URL")
        return v.rstrip("/") if v else v


class SimSettings(Section):
    balance_usdt: float = Field(default=10_000.0, gt=0, le=1e12)
    maker_fee: float = Field(default=0.0002, ge=0, le=0.01)
    taker_fee: float = Field(default=0.0005, ge=0, le=0.01)
    slippage_bps: float = Field(default=1.0, ge=0, le=500)
    path_steps: int = Field(default=4, ge=4, le=1000)
    pessimistic: bool = True
    default_funding_rate: float = Field(default=0.0001, ge=-0.03, le=0.03)
    default_leverage: int = Field(default=20, ge=1, le=125)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    warmup_bars: int = Field(default=7200, ge=0, le=100_000)
    admin: bool = False
    ws_ping_interval_s: float = Field(default=180.0, gt=0, le=3600)


class SensorSettings(Section):
    enabled: list[str] = Field(default_factory=lambda: ["*"])
    disabled: list[str] = Field(default_factory=list)
    timeframes: list[str] = Field(default_factory=lambda: ["1m", "5m", "15m", "1h", "4h"])
    workers: int = Field(default=0, ge=0, le=64)  # 0 = one per core, at least 2
    # Bind each worker to one CPU of the engine's (when there are no more workers than CPUs): a
    # worker that keeps its core keeps its caches and never queues behind the other worker
    # when both wake for a burst (quiet 2-core machine, 50-symbol bursts, 3 × 200: p99
    # 9.3–10.0 ms bound, 11.1–11.5 ms not). Off for a machine shared with other busy work.
    pin_workers: bool = True
    # Largest window a worker hands one sensor; must cover every enabled sensor's own window
    # (warm-up + settle bars of its recursive indicators, see sensors/base.py).
    window_bars: int = Field(default=1024, ge=50, le=10_000)
    # Bars kept per symbol × timeframe beyond window_bars, so a slow worker's window is not
    # overwritten while it reads (a reading that was overwritten is returned as missing).
    ring_slack_bars: int = Field(default=256, ge=16, le=100_000)
    task_timeout_ms: int = Field(default=2000, ge=10, le=60_000)
    recycle_after_tasks: int = Field(default=100_000, ge=10)
    max_worker_rss_mb: int = Field(default=1024, ge=64)
    # TP/SL distance suggestions (fractions) per timeframe; Casino-V3 defaults.
    tp_fraction: dict[str, float] = Field(
        default_factory=lambda: {"1m": 0.015, "5m": 0.03, "15m": 0.06, "1h": 0.12, "4h": 0.2}
    )
    sl_fraction: dict[str, float] = Field(
        default_factory=lambda: {"1m": 0.010, "5m": 0.02, "15m": 0.04, "1h": 0.08, "4h": 0.12}
    )
    params: dict[str, dict[str, float | int | str | bool]] = Field(default_factory=dict)
    # Per-sensor overrides: which timeframes a sensor reads, and its TP/SL suggestions.
    sensor_timeframes: dict[str, list[str]] = Field(default_factory=dict)
    tp_fraction_by_sensor: dict[str, dict[str, float]] = Field(default_factory=dict)
    sl_fraction_by_sensor: dict[str, dict[str, float]] = Field(default_factory=dict)
    error_log_interval_s: float = Field(default=60.0, gt=0, le=86_400)  # a raising sensor logs once per interval
    start_timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("sensor_timeframes")
    @classmethod
    def _sensor_tfs(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, tfs in v.items():
            for tf in tfs:
                if tf not in TIMEFRAMES:
                    raise ValueError(f"{name}: {tf!r} is not a timeframe; allowed: {', '.join(TIMEFRAMES)}")
        return v

    @field_validator("tp_fraction_by_sensor", "sl_fraction_by_sensor")
    @classmethod
    def _sensor_fractions(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, per_tf in v.items():
            for tf, x in per_tf.items():
                if tf not in TIMEFRAMES:
                    raise ValueError(f"{name}: {tf!r} is not a timeframe; allowed: {', '.join(TIMEFRAMES)}")
                if not 0 < x < 0.5:
                    raise ValueError(f"{name} {tf}: {x} must be a fraction in (0, 0.5) — 0.01 means 1 %")
        return v

    @field_validator("timeframes")
    @classmethod
    def _tfs(cls, v: list[str]) -> list[str]:
        for tf in v:
            if tf not in TIMEFRAMES:
                raise ValueError(f"{tf!r} is not a timeframe; allowed: {', '.join(TIMEFRAMES)}")
        if "1m" not in v:
            raise ValueError("the 1m timeframe is required: every higher timeframe is built from it")
        return v

    @field_validator("tp_fraction", "sl_fraction")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for tf, x in v.items():
            if tf not in TIMEFRAMES:
                raise ValueError(f"{tf!r} is not a timeframe; allowed: {', '.join(TIMEFRAMES)}")
            if not 0 < x < 0.5:
                raise ValueError(f"{tf}: {x} must be a fraction in (0, 0.5) — 0.01 means 1 %")
        return v


class PlayerSettings(Section):
    min_score: float = Field(default=0.5, ge=0, le=1)
    min_resolved_votes: int = Field(default=10, ge=1, le=10_000)
    min_voters: int = Field(default=3, ge=1, le=500)
    min_margin: float = Field(default=0.10, ge=0, le=1)
    min_confidence: float = Field(default=0.05, ge=0, le=1)
    cooldown_bars: int = Field(default=5, ge=0, le=10_000)
    htf_filter: bool = True
    tp_min_fraction: float = Field(default=0.004, gt=0, lt=0.5)
    tp_max_fraction: float = Field(default=0.12, gt=0, lt=0.5)
    sl_min_fraction: float = Field(default=0.003, gt=0, lt=0.5)
    sl_max_fraction: float = Field(default=0.08, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _bounds(self) -> PlayerSettings:
        if self.tp_min_fraction > self.tp_max_fraction:
            raise ValueError("tp_min_fraction must not exceed tp_max_fraction")
        if self.sl_min_fraction > self.sl_max_fraction:
            raise ValueError("sl_min_fraction must not exceed sl_max_fraction")
        return self


class TrackerSettings(Section):
    horizon_bars: int = Field(default=60, ge=1, le=100_000)
    window: int = Field(default=200, ge=10, le=100_000)
    recent_window: int = Field(default=20, ge=1, le=10_000)
    max_open_votes: int = Field(default=50_000, ge=100, le=10_000_000)  # bound on unresolved votes
    weight_expectancy: float = Field(default=0.40, ge=0, le=1)
    weight_profit_factor: float = Field(default=0.25, ge=0, le=1)
    weight_streak: float = Field(default=0.20, ge=0, le=1)
    weight_recent_win_rate: float = Field(default=0.10, ge=0, le=1)
    weight_recency: float = Field(default=0.05, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> TrackerSettings:
        total = (
            self.weight_expectancy + self.weight_profit_factor + self.weight_streak
            + self.weight_recent_win_rate + self.weight_recency
        )
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the five weight_* values must sum to 1, they sum to {total:.4f}")
        if self.recent_window > self.window:
            raise ValueError("recent_window must not exceed window")
        return self


class SizingSettings(Section):
    mode: Literal["kelly", "fixed_notional", "fixed_risk"] = "kelly"
    min_fraction: float = Field(default=0.01, gt=0, le=1)
    max_fraction: float = Field(default=0.10, gt=0, le=1)
    fallback_fraction: float = Field(default=0.01, gt=0, le=1)
    min_trades_for_kelly: int = Field(default=10, ge=1)
    fixed_notional_usdt: float = Field(default=100.0, gt=0)
    risk_fraction: float = Field(default=0.005, gt=0, le=0.2)
    leverage: int = Field(default=5, ge=1, le=125)

    @model_validator(mode="after")
    def _bounds(self) -> SizingSettings:
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                f"min_fraction ({self.min_fraction}) must not exceed max_fraction ({self.max_fraction})"
            )
        return self


class UniverseSettings(Section):
    enabled: bool = False
    candidates: list[str] = Field(default_factory=list)
    top_n: int = Field(default=5, ge=1, le=200)
    refresh_s: float = Field(default=3600.0, ge=3600.0)
    max_changes_per_refresh: int = Field(default=2, ge=0, le=200)

    @field_validator("candidates")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return _check_symbols(v)


class RiskSettings(Section):
    allowlist: list[str] = Field(default_factory=list)  # empty = the session's symbols
    max_positions: int = Field(default=5, ge=1, le=500)
    max_notional_per_symbol_usdt: float = Field(default=5_000.0, gt=0)
    max_gross_exposure_usdt: float = Field(default=20_000.0, gt=0)
    max_gross_leverage: float = Field(default=3.0, gt=0, le=125)  # gross notional / equity
    daily_loss_limit_fraction: float = Field(default=0.05, gt=0, le=1)
    daily_reset: Literal["session", "utc_midnight"] = "session"
    max_consecutive_losses: int = Field(default=4, ge=1, le=1000)
    loss_cooldown_s: float = Field(default=900.0, ge=0)
    max_orders_per_minute: int = Field(default=60, ge=1, le=10_000)
    stale_after_intervals: float = Field(default=2.0, gt=0, le=100)
    universe: UniverseSettings = Field(default_factory=UniverseSettings)

    @field_validator("allowlist")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return _check_symbols(v)


class CroupierSettings(Section):
    entry_type: Literal["MARKET", "LIMIT"] = "MARKET"
    entry_time_in_force: Literal["GTC", "GTX"] = "GTX"
    entry_timeout_s: float = Field(default=60.0, gt=0, le=86_400)
    take_profit: Literal["algo", "limit"] = "algo"
    stop_close_position: bool = True
    protect_attempts: int = Field(default=3, ge=1, le=20)
    adoption_policy: Literal["protect", "flatten"] = "protect"
    adoption_sl_fraction: float = Field(default=0.02, gt=0, lt=0.5)
    reconcile_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    snapshot_interval_s: float = Field(default=5.0, gt=0, le=3600)
    snapshot_generations: int = Field(default=10, ge=1, le=1000)
    journal_fsync: bool = True  # order intents are fsynced regardless; this covers the other entries
    fill_dedupe_keys: int = Field(default=5000, ge=100, le=1_000_000)
    margin_type: Literal["ISOLATED", "CROSSED"] = "CROSSED"
    sweep_passes: int = Field(default=3, ge=1, le=10)
    leverage: int = Field(default=0, ge=0, le=125)  # set on every session symbol at start; 0 = leave as is


class MetricsSettings(Section):
    addr: str = "127.0.0.1:9108"
    allow_non_loopback: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _loopback(self) -> MetricsSettings:
        host, sep, port = self.addr.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"addr {self.addr!r} must be HOST:PORT, e.g. 127.0.0.1:9108")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]") and not self.allow_non_loopback:
            raise ValueError(
                f"addr {self.addr!r} is not loopback; set metrics.allow_non_loopback = true to expose it"
            )
        return self


class Settings(BaseModel):
    """The whole configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session: SessionSettings = Field(default_factory=SessionSettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    sensors: SensorSettings = Field(default_factory=SensorSettings)
    player: PlayerSettings = Field(default_factory=PlayerSettings)
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    sizing: SizingSettings = Field(default_factory=SizingSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    croupier: CroupierSettings = Field(default_factory=CroupierSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _cross_section(self) -> Settings:
        if self.risk.allowlist:
            outside = [s for s in self.session.symbols if s not in self.risk.allowlist]
            if outside:
                raise ValueError(
                    f"session.symbols {outside} are not in risk.allowlist {self.risk.allowlist}"
                )
        if self.session.mode == "live" and self.exchange.rest_url and "127.0.0.1" in self.exchange.rest_url:
            raise ValueError("mode 'live' with a loopback exchange.rest_url is contradictory; use 'paper'")
        return self

    @property
    def allowlist(self) -> list[str]:
        return list(self.risk.allowlist or self.session.symbols)
