"""Casino command line: the composition root (nothing imports this module).

Exit codes: 0 ok · 2 bad usage or configuration · 3 preflight failed · 4 crashed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.loader import load_settings
from config.settings import Settings
from core.errors import ConfigError, DataError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PREFLIGHT = 3
EXIT_CRASHED = 4

EPILOG = """\
examples:
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_OK
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
