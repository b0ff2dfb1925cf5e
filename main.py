"""Casino command line: the composition root (nothing imports this module).

Exit codes: 0 ok · 2 bad usage or configuration · 3 preflight failed · 4 crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.loader import load_settings
from config.secrets import Secrets
from config.settings import Settings
from core.errors import ConfigError, DataError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PREFLIGHT = 3
EXIT_CRASHED = 4

EPILOG = """\
examples:
  python main.py                              a 5-minute paper session on the simulated exchange
  python main.py --duration 60s --speed 120   a short, fast paper session (`run` is the default command)
  python main.py run --symbols BTCUSDT,ETHUSDT --duration 2h --on-exit keep
  python main.py replay --duration 24h        backtest a day of recorded data as fast as possible
  python main.py replay --fast                vectorised backtest of the whole dataset (same trades, same report)
  CASINO_API_KEY=… CASINO_API_SECRET=… python main.py run --mode testnet --duration 1h
  python main.py preflight --mode testnet     check the venue before trading (exit 3 on failure)
  python main.py status --state-dir sessions/<id>/state
  python main.py config                       show the effective configuration
  python main.py config --config my.toml      validate a config file (exit 2 if invalid)
  python main.py data                         list recorded candles and check them
  python main.py data --dataset spot-2021     check another dataset folder
  python main.py sim --symbols BTCUSDT,ETHUSDT --speed 60 --balance 10000
                                              serve the simulated Binance (prints REST_URL=, WS_URL=, API_KEY=)
  python main.py sensors                      list the sensors and which ones the config enables
  python main.py report sessions/20261122-…   re-render a session report
  python main.py sweep --all                  emergency: cancel every order, flatten every position
                                              (keys from CASINO_API_KEY/SECRET; --exchange-url for any endpoint)

exit codes: 0 ok, 2 bad usage or configuration, 3 preflight failed, 4 crashed
"""


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 as well; keep one path
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (default: config/default.toml)")
    parser.add_argument("--data-dir", type=Path, help="recorded data folder (env CASINO_DATA_DIR)")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings with file < env < these flags."""
    flags = {"session.data_dir": getattr(args, "data_dir", None), **overrides}
    return load_settings(getattr(args, "config", None), overrides=flags)


# ----------------------------------------------------------------------------- config


def cmd_config(args: argparse.Namespace) -> int:
    """Validate and print the effective configuration as TOML-like text."""
    from config.secrets import load_secrets

    settings = settings_from(args)
    secrets = load_secrets()
    for section, values in settings.model_dump(mode="json").items():
        _print_section(section, values)
    print(f"\n# credentials: {secrets}")
    return EXIT_OK


def _print_section(name: str, values: dict[str, Any]) -> None:
    print(f"\n[{name}]")
    nested = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key, value in values.items():
        if key in nested:
            continue
        print(f"# {key} is unset" if value is None else f"{key} = {_toml_value(value)}")
    for key, value in nested.items():
        if value and all(isinstance(v, dict) for v in value.values()):
            for sub, subvalues in value.items():
                _print_section(f"{name}.{key}.{sub}", subvalues)
        else:
            _print_section(f"{name}.{key}", value)


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


# ------------------------------------------------------------------------------- data


def cmd_data(args: argparse.Namespace) -> int:
    """List the recorded data found and validate every candle file."""
    from core.history import dataset_files, find_data_dir, load_candles, load_funding

    settings = settings_from(args)
    root = find_data_dir(settings.session.data_dir)
    dataset = args.dataset or settings.session.dataset
    folder = root / dataset
    if not folder.is_dir():
        choices = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"dataset {dataset!r} not found in {root}; available: {', '.join(choices)}")
    print(f"data: {folder}")
    symbols = sorted({p.name.split("-")[0] for p in folder.glob("*.csv*")})
    print(f"{'file':34} {'rows':>8} {'first (UTC)':>17} {'last (UTC)':>17} {'gaps':>5} {'missing':>8}")
    for symbol in symbols:
        files = dataset_files(folder, symbol)
        for tf, path in sorted(files.candles.items(), key=lambda kv: kv[0].ms):
            series = load_candles(path, symbol=symbol, timeframe=tf)
            print(
                f"{path.name:34} {len(series):>8} {_utc(series.first_open_ms):>17} "
                f"{_utc(series.last_open_ms):>17} {len(series.gaps):>5} {series.missing_bars:>8}"
            )
        if files.funding:
            funding = load_funding(files.funding, symbol=symbol)
            print(f"{files.funding.name:34} {len(funding):>8} {_utc(int(funding.time_ms[0])):>17} "
                  f"{_utc(int(funding.time_ms[-1])):>17}")
    return EXIT_OK


def _utc(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


# ----------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.html from a session directory's report.json."""
    from core.report import load_report
    from core.report_html import render_html

    session_dir: Path = args.session_dir
    if not (session_dir / "report.json").is_file():
        raise UsageError(f"{session_dir} has no report.json (give a session directory)")
    doc = load_report(session_dir)
    out = session_dir / "report.html"
    out.write_text(render_html(doc), encoding="utf-8")
    stats = doc["stats"]
    print(f"session {doc['session_id']} ({doc['mode']}): {stats['trades']} trades, "
          f"net PnL {doc['pnl']['net']} USDT, max drawdown {stats['max_drawdown'] * 100:.2f} %")
    print(f"report: {out}")
    return EXIT_OK


# -------------------------------------------------------------------------------- sim


def cmd_sim(args: argparse.Namespace) -> int:
    """Serve the simulated Binance until SIGTERM/SIGINT (first stdout lines: REST_URL=… etc.)."""
    import asyncio

    from exchanges.sim.standalone import StandaloneOptions, serve

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["sim.port"] = args.port
    if args.balance is not None:
        overrides["sim.balance_usdt"] = args.balance  # validated with the other settings
    settings = settings_from(args, **overrides)
    symbols = [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else settings.session.symbols
    speed = settings.session.speed if args.speed is None else args.speed
    if speed < 0:
        raise UsageError("--speed must be ≥ 0 (0 = manual clock)")
    opts = StandaloneOptions(
        symbols=symbols, speed=speed, api_key=args.api_key, api_secret=args.api_secret,
        ed25519_api_key=args.ed25519_api_key, ed25519_public_key=args.ed25519_public_key,
        dataset=args.dataset, start_ms=args.start_ms, admin=args.admin,
    )
    return asyncio.run(serve(settings, opts))

# ----------------------------------------------------------------------------- sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    """Cancel every order and flatten every position (Casino's symbols, or --all), then verify."""
    import asyncio
    import json

    from config.secrets import load_secrets
    from core.clock import LiveClock
    from core.errors import ExchangeError
    from croupier.sweep import sweep
    from exchanges.binance.client import BinanceFutures
    from exchanges.binance.urls import DEMO, LIVE, resolve_urls

    settings = settings_from(args)
    secrets = load_secrets()
    if not secrets.present:
        raise UsageError("sweep needs API credentials (CASINO_API_KEY / CASINO_API_SECRET or a key file)")
    default = LIVE if settings.session.mode == "live" else DEMO
    urls = resolve_urls(args.exchange_url or settings.exchange.rest_url,
                        args.stream_url or settings.exchange.stream_url, default=default)
    symbols = None if args.all else list(settings.session.symbols)

    async def run() -> int:
        client = BinanceFutures(urls, clock=LiveClock(), settings=settings.exchange, secrets=secrets)
        try:
            await client.start()
            result = await sweep(client, symbols, passes=settings.croupier.sweep_passes)
        except ExchangeError as exc:
            print(f"sweep failed: {exc}", file=sys.stderr)
            return EXIT_CRASHED
        finally:
            await client.close()
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK if result.flat else EXIT_CRASHED

    return asyncio.run(run())


# ---------------------------------------------------------------------------- sensors


def cmd_sensors(args: argparse.Namespace) -> int:
    """List the sensor registry: what exists, what the configuration enables and where it runs."""
    from core.sensor_plan import build_plan, enabled_names
    from sensors.registry import all_sensors

    settings = settings_from(args).sensors
    specs = all_sensors()
    enabled = enabled_names(settings, specs)
    plan = build_plan(settings, specs)
    planned: dict[str, list[str]] = {}
    for tf, sensors in plan.by_timeframe.items():
        for s in sensors:
            planned.setdefault(s.name, []).append(tf.value)
    print(f"{'sensor':26} {'family':11} {'timeframes':18} {'warm-up':>7} {'window':>6} {'role':7} enabled")
    for name, spec in specs.items():
        params = spec.resolve(settings.params.get(name))
        tfs = planned.get(name) or list(settings.sensor_timeframes.get(name, spec.timeframes))
        on = "yes" if name in planned else ("no (timeframes not kept)" if name in enabled else "no")
        print(f"{name:26} {spec.family.value:11} {','.join(tfs):18} {spec.warmup_bars(params):>7} "
              f"{spec.window_bars(params):>6} {'context' if spec.context else 'voter':7} {on}")
    voters = sum(1 for n in planned if not specs[n].context)
    print(f"\n{len(specs)} sensors, {len(planned)} enabled ({voters} voters, {len(planned) - voters} context); "
          f"timeframes kept: {', '.join(settings.timeframes)}; largest window {plan.max_window} of "
          f"{settings.window_bars} bars")
    return EXIT_OK


# -------------------------------------------------------------------------------- run


DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")
LIVE_ACK = "I_UNDERSTAND"


def parse_duration(text: str) -> float:
    """'90s', '5m', '2h' → seconds; a unit is required so nobody runs 2 s thinking 2 h."""
    m = DURATION_RE.match(text.strip())
    if not m:
        raise UsageError(f"--duration {text!r}: give a number with a unit, e.g. 90s, 5m or 2h")
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2]]


def cmd_run(args: argparse.Namespace) -> int:
    """A timed trading session (paper by default)."""
    import asyncio

    from config.secrets import load_secrets

    replay = args.command == "replay"
    overrides: dict[str, Any] = {
        "session.mode": "replay" if replay else getattr(args, "mode", None),
        "session.symbols": [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else None,
        "session.duration_s": parse_duration(args.duration) if args.duration else None,
        "session.on_exit": args.on_exit,
        "session.speed": getattr(args, "speed", None),
        "session.state_dir": args.state_dir,
        "session.dataset": args.dataset,
        "metrics.addr": args.metrics_addr,
        "exchange.rest_url": getattr(args, "exchange_url", None),
        "exchange.stream_url": getattr(args, "stream_url", None),
    }
    settings = settings_from(args, **overrides)
    mode = settings.session.mode
    if mode == "live" and (not getattr(args, "live", False) or os.environ.get("CASINO_LIVE_ACK") != LIVE_ACK):
        raise UsageError(f"live trading needs --live and CASINO_LIVE_ACK={LIVE_ACK} in the environment")
    secrets = load_secrets()
    if mode in ("testnet", "live") and not secrets.present:
        raise ConfigError(f"mode {mode!r} needs API credentials: set CASINO_API_KEY and CASINO_API_SECRET "
                          "(or CASINO_ED25519_KEY_FILE)", key="CASINO_API_KEY")
    if getattr(args, "exchange_url", None) and not secrets.present:
        raise ConfigError("--exchange-url needs the endpoint's credentials in CASINO_API_KEY / CASINO_API_SECRET "
                          "(for `python main.py sim`, the API_KEY= and API_SECRET= it printed)", key="CASINO_API_KEY")
    duration_s = parse_duration(args.duration) if args.duration else (None if replay else settings.session.duration_s)
    if replay and getattr(args, "fast", False):
        return run_fast(settings, duration_s=duration_s, progress=sys.stderr.isatty())
    return asyncio.run(compose_and_run(settings, secrets, duration_s=duration_s,
                                       progress=replay and sys.stderr.isatty()))


def _run_arguments(p: argparse.ArgumentParser, *, replay: bool) -> None:
    p.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (default: session.symbols)")
    p.add_argument("--duration", help="how long to trade, with a unit: 90s, 5m, 2h (replay: simulated time; "
                   "default: session.duration_s, replay: until the data ends)")
    p.add_argument("--on-exit", choices=["flatten", "keep"], help="at the end: close everything, or keep "
                   "positions with their exchange-side TP/SL (default: session.on_exit)")
    p.add_argument("--state-dir", type=Path, help="snapshots + journal (default: per session for paper/replay)")
    p.add_argument("--dataset", help="recorded data sub-folder (default: session.dataset)")
    p.add_argument("--metrics-addr", help="HOST:PORT for /metrics /health /ready /status (default 127.0.0.1:9108)")
    if replay:
        p.add_argument("--fast", action="store_true", help="vectorised backtest: the same trades and report as the "
                       "event-driven replay, thousands of times faster; refuses (exit 2) options it does not reproduce")
        return
    p.add_argument("--mode", choices=["paper", "replay", "testnet", "live"], help="default: session.mode (paper)")
    p.add_argument("--speed", type=float, help="paper on recorded data: simulated seconds per real second")
    p.add_argument("--exchange-url", help="trade against any Binance-compatible REST base URL")
    p.add_argument("--stream-url", help="its websocket base URL (ws:// or wss://)")
    p.add_argument("--live", action="store_true", help="required (with CASINO_LIVE_ACK) for --mode live")



async def compose_and_run(settings: Settings, secrets: Secrets, *, duration_s: float | None, progress: bool) -> int:
    """Build every component of a session once, hand them to the engine, run, clean up."""
    import hashlib
    import secrets as pysecrets
    from datetime import UTC, datetime

    from core.clock import LiveClock
    from core.engine import Engine, EngineParts
    from core.logs import setup_logging
    from core.market_data import MarketData
    from core.observability import ObservabilityServer
    from core.player import Player, PlayerParams
    from core.report import SessionRecord
    from core.risk import RiskGate, RiskParams
    from core.sensor_pool import SensorPool
    from core.sensor_tracker import SensorTracker, TrackerParams
    from core.session import SessionRun, run_session, write_status
    from core.session_control import SessionControl
    from core.sizing import SizingParams
    from core.types import Timeframe
    from croupier.croupier import Croupier

    s = settings.session
    session_id = f"{datetime.now(tz=UTC):%Y%m%d-%H%M%S}-{s.mode}-{pysecrets.token_hex(2)}"
    session_dir = s.sessions_dir / session_id
    session_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(level=s.log_level, fmt=s.log_format, file=str(session_dir / "casino.log"))
    state_dir = s.state_dir / s.mode if s.mode in ("testnet", "live") else session_dir / "state"
    if s.mode in ("paper", "replay") and s.state_dir != Path("state-data"):
        state_dir = s.state_dir  # an explicit --state-dir wins (resuming a paper session's state)
    cleanups: list[Callable[[], Awaitable[None]]] = []
    venue = await build_venue(settings, secrets, cleanups)
    try:
        exchange, clock = venue.exchange, venue.clock
        start_balance = await _wallet_balance(exchange)
        timeframes = [Timeframe(t) for t in settings.sensors.timeframes]
        market = MarketData(s.symbols, timeframes, settings.sensors.window_bars + settings.sensors.ring_slack_bars)
        cleanups.append(_async(market.close))
        pool = SensorPool(market, settings.sensors)
        await pool.start()
        cleanups.append(pool.stop)
        tracker = SensorTracker(TrackerParams.from_settings(settings.tracker, settings.player))
        player = Player(PlayerParams.from_settings(settings.player), s.symbols, clock=clock)
        risk = RiskGate(RiskParams.from_settings(settings.risk), clock, allowlist=settings.allowlist,
                        start_equity=start_balance)
        config_hash = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
        record = SessionRecord(session_id, s.mode, config_hash, list(s.symbols), clock.now_ms(), start_balance,
                               on_exit=s.on_exit)
        holder: dict[str, Engine] = {}
        control = SessionControl(on_status_request=lambda: write_status(holder["engine"], session_dir))
        croupier = Croupier(
            exchange, clock, settings.croupier, state_dir=state_dir, session_id=session_id, symbols=s.symbols,
            on_trade_closed=lambda trade: holder["engine"].on_trade_closed(trade),
            extra_state=lambda: holder["engine"].extra_state(),
        )
        parts = EngineParts(
            settings=settings, exchange=exchange, clock=clock, croupier=croupier, market=market, pool=pool,
            player=player, tracker=tracker, risk=risk, sizing=SizingParams.from_settings(settings.sizing),
            record=record, control=control, session_dir=session_dir, preflight=venue.preflight,
            breakers=venue.breakers, banned_until_ms=venue.banned_until_ms,
        )
        engine = holder["engine"] = Engine(parts)
        engine.settle_user_events = venue.settle_user_events
        engine.on_ready = venue.on_engine_ready
        if os.environ.get("CASINO_CRASH_AFTER_BARS", "").isdigit():
            engine.crash_after_bars = int(os.environ["CASINO_CRASH_AFTER_BARS"])
        metrics = None
        if settings.metrics.enabled:
            host, _, port = settings.metrics.addr.rpartition(":")
            metrics = ObservabilityServer(host.strip("[]"), int(port), status=engine.status, ready=lambda: engine.ready)
        run = SessionRun(
            engine, duration_s if duration_s is not None else float("inf"),
            clock if s.mode == "replay" else LiveClock(), metrics, cleanups,
            on_progress=_progress_printer(engine, venue) if progress else None,
        )
        print(f"session {session_id}: {s.mode} on {','.join(s.symbols)}; exit policy {s.on_exit}; "
              f"reports in {session_dir}", file=sys.stderr)
        code = await run_session(run)
        print(f"session {session_id} ended ({record.exit_reason}); report: {session_dir / 'report.html'}",
              file=sys.stderr)
        return code
    except BaseException:
        for cleanup in reversed(cleanups):
            try:
                await cleanup()
            except Exception:  # noqa: BLE001 - best effort while already failing
                pass
        raise


def run_fast(settings: Settings, *, duration_s: float | None, progress: bool) -> int:
    """``replay --fast``: the vectorised replay (core/fast_replay.py), same session dir and report."""
    import secrets as pysecrets
    from datetime import UTC, datetime

    from core.fast_replay import refuse_unsupported, run_fast_replay
    from core.logs import setup_logging
    from core.report import write_report

    refuse_unsupported(settings, duration_s)  # before anything is created
    s = settings.session
    session_id = f"{datetime.now(tz=UTC):%Y%m%d-%H%M%S}-replay-{pysecrets.token_hex(2)}"
    session_dir = s.sessions_dir / session_id
    session_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(level=s.log_level, fmt=s.log_format, file=str(session_dir / "casino.log"))
    print(f"session {session_id}: fast replay on {','.join(s.symbols)}; reports in {session_dir}", file=sys.stderr)
    record, _fast = run_fast_replay(settings, session_id, session_dir, duration_s=duration_s, progress=progress)
    write_report(record, session_dir)
    print(f"session {session_id} ended ({record.exit_reason}); {len(record.trades)} trades; "
          f"report: {session_dir / 'report.html'}", file=sys.stderr)
    return EXIT_OK


@dataclass
class ExchangeSetup:
    """The venue a session trades on, and what the engine needs to know about it."""

    exchange: Any
    clock: Any
    preflight: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None
    breakers: Callable[[], dict[str, str]] | None = None
    banned_until_ms: Callable[[], int] | None = None
    settle_user_events: Callable[[], Awaitable[None]] | None = None
    on_engine_ready: Callable[[], None] | None = None  # warm-up done, streams about to open
    total_bars: int | None = None


async def build_venue(settings: Settings, secrets: Secrets, cleanups: list[Callable[[], Awaitable[None]]]) -> ExchangeSetup:
    """replay → in-process simulator; paper → simulator on loopback through the real connector;
    testnet/live or --exchange-url → the connector against that endpoint."""
    import asyncio

    from config.secrets import Secrets as SecretsType
    from core.history import find_data_dir
    from exchanges.binance.client import BinanceFutures
    from exchanges.binance.preflight import preflight
    from exchanges.binance.urls import DEMO, LIVE, BinanceUrls
    from exchanges.sim.local import LocalExchange
    from exchanges.sim.standalone import StandaloneOptions, build_server

    s = settings.session
    if s.mode == "replay":
        folder = find_data_dir(s.data_dir) / s.dataset
        local = LocalExchange.from_folder(folder, s.symbols, settings.sim, warmup_bars=settings.sim.warmup_bars)
        cleanups.append(local.close)

        async def settle() -> None:
            # the croupier reacts to this bar's fills (placing stops …) before the data plays on
            quiet = 0
            for _ in range(10_000):
                quiet = quiet + 1 if not local.pending_user_events else 0
                if quiet >= 5:
                    break
                await asyncio.sleep(0)

        # the bars from the one closing as the clock starts to the last (as the fast path counts)
        total = ((local.venue.end_ms + 1 - local.venue.start_ms) // 60_000 + 1) * len(s.symbols)
        return ExchangeSetup(local, local.clock, settle_user_events=settle, total_bars=total)
    server = None
    if s.mode == "paper" and settings.exchange.rest_url is None:
        # Simulated time waits for the engine's kline stream: preflight and warm-up (real seconds)
        # play no bar unseen, so the session decides on the same bars as a replay of the same data.
        server = build_server(settings, StandaloneOptions(symbols=list(s.symbols), speed=s.speed, hold_clock=True))
        await server.start()
        cleanups.append(server.stop)
        urls = BinanceUrls(rest=server.rest_url, ws=server.ws_url)
        clock: Any = server.clock  # the connector signs and syncs on the simulator's scaled time
        client = BinanceFutures(urls, clock=clock, settings=settings.exchange,
                                secrets=SecretsType(api_key=server.api_key, api_secret=server.api_secret))
    else:
        default = DEMO if s.mode == "testnet" else LIVE
        clock = await venue_clock(settings.exchange.rest_url or default.rest)
        client = BinanceFutures.from_settings(settings.exchange, secrets, clock, default_urls=default)
    await client.start()
    cleanups.append(client.close)

    async def run_preflight() -> tuple[bool, dict[str, Any]]:
        result = await preflight(client, list(s.symbols))
        return result.ok, result.as_dict()

    return ExchangeSetup(
        client, clock, preflight=run_preflight,
        on_engine_ready=server.start_clock_on_next_kline_subscriber if server is not None else None,
        breakers=lambda: {g: st.value for g, st in client.breaker_states().items()},
        banned_until_ms=lambda: client.limiter.banned_until_ms,
    )


async def venue_clock(rest_url: str) -> Any:
    """The venue's own pace: wall time for Binance, a scaled clock for a simulator that runs
    N× faster (e.g. ``python main.py sim --speed 60``), measured from two /time samples."""
    import asyncio

    import aiohttp

    from core.clock import LiveClock, ScaledClock

    live = LiveClock()

    async def sample(http: aiohttp.ClientSession) -> tuple[float, int]:
        before = live.monotonic()
        async with http.get(f"{rest_url}/fapi/v1/time") as response:
            server_ms = int((await response.json())["serverTime"])
        return (before + live.monotonic()) / 2, server_ms

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            t1, s1 = await sample(http)
            await asyncio.sleep(1.0)
            t2, s2 = await sample(http)
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read the venue's time at {rest_url}/fapi/v1/time: {exc!r}", key="exchange.rest_url") from None
    rate = (s2 - s1) / max((t2 - t1) * 1000, 1e-9)
    if abs(rate - 1) < 0.05 and abs(s2 - live.now_ms()) < 3_600_000:
        return live  # a venue on wall time (Binance): the connector tracks the small offset
    return ScaledClock(s2 + round((live.monotonic() - t2) * 1000 * rate), max(rate, 1e-6))


async def _wallet_balance(exchange: Any) -> Decimal:
    for balance in await exchange.balances():
        if balance.asset == "USDT":
            return balance.wallet_balance
    return Decimal(0)


def _async(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        fn()

    return run


def _progress_printer(engine: Any, venue: ExchangeSetup) -> Callable[[], None]:
    """A one-line progress bar for replays on a terminal: bars done, bars/s, ETA."""
    import time

    from core.progress import draw, progress_line

    started = time.monotonic()
    total = venue.total_bars or 0

    def show() -> None:
        draw(progress_line(engine.bars_processed, total, time.monotonic() - started))

    return show


# -------------------------------------------------------------------------- preflight


def cmd_preflight(args: argparse.Namespace) -> int:
    """Run the pre-trade checks against the configured venue; exit 3 when any fails."""
    import asyncio

    from config.secrets import load_secrets

    settings = settings_from(args, **{
        "session.mode": args.mode, "exchange.rest_url": args.exchange_url, "exchange.stream_url": args.stream_url,
        "session.symbols": [x.strip().upper() for x in args.symbols.split(",")] if args.symbols else None,
    })
    if settings.session.mode == "replay":
        raise UsageError("preflight checks a venue over the network; replay has none")
    secrets = load_secrets()
    if settings.session.mode in ("testnet", "live") and not secrets.present:
        raise ConfigError("preflight against Binance needs CASINO_API_KEY and CASINO_API_SECRET", key="CASINO_API_KEY")

    async def check() -> int:
        cleanups: list[Callable[[], Awaitable[None]]] = []
        try:
            venue = await build_venue(settings, secrets, cleanups)
            assert venue.preflight is not None
            ok, result = await venue.preflight()
        finally:
            for cleanup in reversed(cleanups):
                await cleanup()
        for c in result["checks"]:
            print(f"{c['status']:5} {c['name']:28} {c['detail']}")
        print("preflight passed" if ok else "preflight FAILED: do not trade")
        return EXIT_OK if ok else EXIT_PREFLIGHT

    return asyncio.run(check())


# ----------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    """Print the newest snapshot in a state directory: positions, brackets, PnL, risk state."""
    from state.recovery import BRACKETS_KEY, SNAPSHOT_DIR
    from state.snapshot import FileSnapshotStore

    settings = settings_from(args)
    state_dir: Path = args.state_dir or (settings.session.state_dir / settings.session.mode)
    if not (state_dir / SNAPSHOT_DIR).is_dir():
        raise UsageError(f"no snapshots in {state_dir} (give --state-dir, e.g. sessions/<id>/state)")
    loaded = FileSnapshotStore(state_dir / SNAPSHOT_DIR).load_latest()
    if loaded is None:
        print(f"{state_dir}: no valid snapshot")
        return EXIT_OK
    doc, path = loaded
    print(f"snapshot: {path}")
    brackets = doc.get(BRACKETS_KEY) or {}
    live = {k: b for k, b in brackets.items() if b.get("state") not in ("CLOSED", "CANCELLED", "FAILED")}
    print(f"brackets: {len(live)} open, {len(brackets) - len(live)} finished")
    for bid, b in brackets.items():
        print(f"  {bid:24} {b.get('symbol', ''):10} {b.get('side', ''):4} {b.get('state', ''):12} "
              f"filled {b.get('entry_filled_qty', '0')} exited {b.get('exit_filled_qty', '0')} "
              f"{b.get('close_reason') or b.get('failure_reason') or ''}")
    books = (doc.get("tracker") or {}).get("books", {})
    print("positions and PnL (realized, before fees):")
    for symbol, book in sorted(books.items()):
        fees = ", ".join(f"{v} {k}" for k, v in (book.get("commissions") or {}).items()) or "0"
        print(f"  {symbol:10} qty {book.get('quantity')} realized {book.get('realized')} fees {fees} "
              f"funding {book.get('funding')} mark {book.get('mark')}")
    risk = (doc.get("engine") or {}).get("risk") or {}
    if risk:
        print(f"risk: equity {risk.get('equity')} (start {risk.get('start_equity')}), realized {risk.get('realized')}, "
              f"consecutive losses {risk.get('consecutive_losses')}, latched {risk.get('latched') or 'none'}")
    return EXIT_OK

# ------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="main.py",
        description="Casino: a signal-driven trading bot for Binance USD-M perpetual futures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        _common(p)
        return p

    p = add("run", cmd_run, "run a timed trading session (default: paper on the simulated exchange)")
    _run_arguments(p, replay=False)
    p = add("replay", cmd_run, "backtest over recorded data through the same engine, as fast as possible")
    _run_arguments(p, replay=True)
    p = add("preflight", cmd_preflight, "check connectivity, clock, account mode, algo endpoints and streams; exit 3 on failure")
    p.add_argument("--mode", choices=["paper", "testnet", "live"], help="default: session.mode")
    p.add_argument("--symbols", help="comma-separated (default: session.symbols)")
    p.add_argument("--exchange-url", help="any Binance-compatible REST base URL")
    p.add_argument("--stream-url", help="its websocket base URL")
    p = add("status", cmd_status, "show the newest state snapshot: positions, brackets, PnL, risk state")
    p.add_argument("--state-dir", type=Path, help="state directory (default: session.state_dir/<mode>)")
    add("config", cmd_config, "validate the configuration and print the effective settings")
    p = add("report", cmd_report, "re-render a session's report.html from its report.json")
    p.add_argument("session_dir", type=Path, metavar="SESSION_DIR", help="a session directory")
    p = add("data", cmd_data, "list recorded candle files and validate them (gaps, duplicates)")
    p.add_argument("--dataset", help="sub-folder of the data dir (default: session.dataset)")
    p = add("sim", cmd_sim, "serve the simulated Binance USD-M futures exchange on loopback until SIGTERM")
    p.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (default: session.symbols)")
    p.add_argument("--port", type=int, help="TCP port (default: sim.port; 0 = any free port)")
    p.add_argument("--speed", type=float, help="simulated seconds per real second (default: session.speed; "
                   "0 = manual clock, advanced with POST /sim/admin/advance and --admin)")
    p.add_argument("--balance", type=float, help="starting USDT wallet (default: sim.balance_usdt)")
    p.add_argument("--dataset", help="sub-folder of the data dir (default: session.dataset)")
    p.add_argument("--start-ms", type=int, help="simulated start time (default: warm-up bars into the data)")
    p.add_argument("--api-key", help="accepted API key (env CASINO_SIM_API_KEY; default: random)")
    p.add_argument("--api-secret", help="its HMAC secret (env CASINO_SIM_API_SECRET; default: random)")
    p.add_argument("--ed25519-public-key", type=Path, help="PEM public key to accept Ed25519 signatures from")
    p.add_argument("--ed25519-api-key", help="API key for that Ed25519 key (default: sim-ed25519)")
    p.add_argument("--admin", action="store_true", help="enable the fault-injection admin endpoints")
    p = add("sweep", cmd_sweep, "emergency: cancel all orders and flatten all positions, then verify flat "
            "(exit 0 flat, 4 not flat or unreachable)")
    p.add_argument("--all", action="store_true", help="every symbol with anything open (default: session.symbols)")
    p.add_argument("--exchange-url", help="REST base URL of any Binance-compatible endpoint (e.g. main.py sim)")
    p.add_argument("--stream-url", help="websocket base URL (default: derived like [exchange] stream_url)")
    add("sensors", cmd_sensors, "list the sensor registry (family, timeframes, warm-up, context/voter, enabled)")
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:  # noqa: SLF001 - argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return list(action.choices)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = set(_subcommands(parser))
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # `python main.py [--duration 60s …]` is `run` with those flags
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(f"main.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as exc:
        print(f"data error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `| head` closed the pipe: not an error of ours
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
