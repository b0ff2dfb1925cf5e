"""The simulated Binance USDⓈ-M futures exchange (paper and replay modes, and every test).

Modules (one job each)::

    errors.py      SimError(code, msg, http_status) with Binance's exact messages
    rules.py       symbol filters (SymbolRules) and margin parameters per simulated symbol
    records.py     SimOrder / SimAlgo and the events the engine emits
    account.py     positions, margin, the wallet ledger (REALIZED_PNL, COMMISSION, FUNDING_FEE)
    algo.py        trigger rules of conditional orders
    matching.py    MatchingEngine: pure, deterministic, time passed in (never reads a clock)
    conditional.py its algo-order half (NEW → TRIGGERING → TRIGGERED → FINISHED …)
    margin.py      its margin half: available balance, funding, simplified liquidation
    feed.py        recorded candles → intra-bar price path, klines history, funding times
    venue.py       Venue: engine + recorded data + simulated time (advance_to)
    local.py       LocalExchange: ExchangePort in-process over a Venue with a FakeClock
    convert.py     simulator records → kernel records
    render.py      simulator records → Binance JSON
    rest.py        SimContext and parameter parsing shared by the handlers
    rest_market.py / rest_orders.py / rest_account.py   one handler per REST endpoint
    routes.py      the routing table (method, path, security, weight, order count)
    auth.py        HMAC-SHA256 / Ed25519 signature and timestamp verification
    limits.py      REQUEST_WEIGHT / ORDERS pools, 429 → 418 escalation
    faults.py      fault injection (Python API and admin endpoint)
    server_ws.py   /market, /public, /private websocket routes
    server.py      SimServer: aiohttp on loopback, clock (manual or speed factor)
    standalone.py  ``python main.py sim``

Public API::

    from exchanges.sim.venue import Venue
    from exchanges.sim.server import SimServer
    from exchanges.sim.local import LocalExchange, engine_config, venue_config

    # server over loopback, manual clock (tests, stepped runs)
    venue = Venue.from_folder(data_dir / "futures-2023", ["BTCUSDT", "ETHUSDT"],
                              engine_config=engine_config(settings.sim),
                              config=venue_config(settings.sim, intrabar_events=True))
    server = SimServer(venue, api_key="k", api_secret="s", speed=None, admin=False)
    await server.start()          # server.rest_url / server.ws_url / server.api_key / server.api_secret
    await server.advance(60)      # play one simulated minute, publish events (speed=None only)
    server.clock                  # a core Clock (FakeClock, or ScaledClock when speed > 0)
                                  # paper mode hands THIS clock to BinanceFutures (built after
                                  # start(), which creates the ScaledClock); see binance/client.py
    await server.stop()

    # or from settings, as `python main.py sim` does
    from exchanges.sim.standalone import StandaloneOptions, build_server
    server = build_server(settings, StandaloneOptions(symbols=["BTCUSDT"], speed=60.0))

    # in-process ExchangePort for replays
    ex = LocalExchange.from_folder(folder, ["BTCUSDT"], settings.sim)
    async for event in ex.market_stream(["BTCUSDT"], [Timeframe.M1]): ...   # drives time
    await ex.advance(60)          # or move time explicitly; ex.clock is the FakeClock

    # faults (also POST /sim/admin/fault {"fault": name, ...} when admin=True)
    server.faults.lose_response("/fapi/v1/order", mode="503" | "-1007" | "timeout")
    server.faults.delay_response(path, delay_s); server.faults.fail(path, status="503" | "-1008")
    server.faults.force_rate_limit(n); server.faults.force_ban(seconds); server.faults.skew_clock(ms)
    server.faults.expire_listen_key(); server.faults.drop_websockets()
    server.faults.reject_next_algo(n); server.faults.split_fills_into(n)
"""
