"""``python main.py sim``: serve the simulator to any Binance client until SIGTERM/SIGINT.

The first lines on stdout are machine-readable, one ``KEY=value`` per line, flushed at once:
``REST_URL``, ``WS_URL``, ``API_KEY``, ``API_SECRET`` (the HMAC pair it accepts),
``ED25519_API_KEY`` (only when a public key was registered), ``SIM_START_MS``, ``SPEED``,
then ``READY=1``. The key pair is the one given with ``--api-key/--api-secret`` or
``CASINO_SIM_API_KEY``/``CASINO_SIM_API_SECRET``, else a fresh random pair; they belong to
this throwaway simulator only. State can be inspected with the same signed REST calls a
client would use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from config.settings import Settings
from core.history import find_data_dir
from core.logs import register_secret, setup_logging
from exchanges.sim.local import engine_config, venue_config
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StandaloneOptions:
    symbols: list[str]
    speed: float  # 0 = manual clock (advance with POST /sim/admin/advance)
    api_key: str | None = None
    api_secret: str | None = None
    ed25519_api_key: str | None = None
    ed25519_public_key: Path | None = None
    dataset: str | None = None
    start_ms: int | None = None
    admin: bool = False
    hold_clock: bool = False  # paper session in-process: time waits for the engine (SimServer)


def build_server(settings: Settings, opts: StandaloneOptions) -> SimServer:
    """The simulator configured from settings + command-line options (not yet started)."""
    sim = settings.sim
    folder = find_data_dir(settings.session.data_dir) / (opts.dataset or settings.session.dataset)
    venue = Venue.from_folder(folder, opts.symbols, engine_config=engine_config(sim),
                              config=venue_config(sim, intrabar_events=True), start_ms=opts.start_ms,
                              warmup_bars=sim.warmup_bars)
    ed_keys: dict[str, bytes] = {}
    if opts.ed25519_public_key is not None:
        ed_keys[opts.ed25519_api_key or "sim-ed25519"] = opts.ed25519_public_key.read_bytes()
    return SimServer(
        venue,
        api_key=opts.api_key or os.environ.get("CASINO_SIM_API_KEY"),
        api_secret=opts.api_secret or os.environ.get("CASINO_SIM_API_SECRET"),
        ed25519_keys=ed_keys, speed=opts.speed or None, host=sim.host, port=sim.port,
        admin=opts.admin or sim.admin, ping_interval_s=sim.ws_ping_interval_s,
        hold_clock=opts.hold_clock,
    )


async def serve(settings: Settings, opts: StandaloneOptions) -> int:
    # Logs go to stderr (stdout carries the machine-readable lines); the secret is redacted.
    setup_logging(level=settings.session.log_level, fmt=settings.session.log_format)
    server = build_server(settings, opts)
    register_secret(server.api_secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        lines = [
            f"REST_URL={server.rest_url}", f"WS_URL={server.ws_url}",
            f"API_KEY={server.api_key}", f"API_SECRET={server.api_secret}",
        ]
        if opts.ed25519_public_key is not None:
            lines.append(f"ED25519_API_KEY={opts.ed25519_api_key or 'sim-ed25519'}")
        lines += [f"SIM_START_MS={server.venue.now_ms}", f"SPEED={format(Decimal(repr(opts.speed)).normalize(), 'f')}",
                  "READY=1"]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await server.stop()
    return 0
