"""Casino's Prometheus metrics, all in one registry so the session serves exactly these.

Naming follows Prometheus practice: ``casino_`` prefix, ``_total`` for counters, base units
(``_seconds``). Labels never carry ids or prices. Components import the objects they update;
a component that needs a new metric adds it here, in its section.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PROTECT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --------------------------------------------------------------------- exchange I/O
API_ERRORS = Counter(
    "casino_api_errors_total", "Exchange API errors by endpoint and code",
    ["endpoint", "code"], registry=REGISTRY,
)
API_REQUESTS = Counter(
    "casino_api_requests_total", "Exchange REST requests sent", ["endpoint"], registry=REGISTRY,
)
ORDER_EXECUTION_SECONDS = Histogram(
    "casino_order_execution_duration_seconds", "Order request round trip",
    ["kind"], buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
RATE_LIMIT_USED = Gauge(
    "casino_rate_limit_used", "Rate-limit pool usage in the current window", ["pool"], registry=REGISTRY,
)
RATE_LIMIT_LIMIT = Gauge(
    "casino_rate_limit_limit", "Rate-limit pool capacity per window", ["pool"], registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "casino_rate_limit_wait_seconds", "Time spent waiting for rate-limit capacity",
    ["lane"], buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
BANNED = Gauge(
    "casino_banned", "1 while the exchange has banned this client (HTTP 418)", registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "casino_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open",
    ["group"], registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "casino_breaker_transitions_total", "Circuit breaker state changes", ["group", "to"], registry=REGISTRY,
)
WS_RECONNECTS = Counter(
    "casino_ws_reconnects_total", "Websocket reconnects", ["stream"], registry=REGISTRY,
)
WS_STALENESS_SECONDS = Gauge(
    "casino_ws_staleness_seconds", "Seconds since the last message on a stream", ["stream"],
    registry=REGISTRY,
)
WS_MALFORMED = Counter(
    "casino_ws_malformed_total", "Malformed or unknown websocket frames skipped", ["stream", "kind"],
    registry=REGISTRY,
)
BACKFILLED_CANDLES = Counter(
    "casino_backfilled_candles_total", "Closed candles recovered over REST after a stream gap",
    registry=REGISTRY,
)
STREAM_GAPS = Counter(
    "casino_stream_gaps_total", "Candle gaps that could not be backfilled", registry=REGISTRY,
)

# ------------------------------------------------------------------ market data / sensors
BAD_CANDLES = Counter(
    "casino_bad_candles_total", "Candles rejected before reaching the buffers", ["reason"],
    registry=REGISTRY,
)
SENSOR_QUEUE_DEPTH = Gauge(
    "casino_sensor_pool_queue_depth", "Bars waiting for the sensor pool", registry=REGISTRY,
)
SENSOR_WORKER_RESTARTS = Counter(
    "casino_sensor_worker_restarts_total", "Sensor workers replaced", ["reason"], registry=REGISTRY,
)
SENSOR_ERRORS = Counter(
    "casino_sensor_errors_total", "Sensor evaluations that raised", ["sensor"], registry=REGISTRY,
)
SENSOR_MISSING = Counter(
    "casino_sensor_missing_total", "Readings delivered as missing", ["reason"], registry=REGISTRY,
)
SENSOR_SECONDS = Histogram(
    "casino_sensor_pool_seconds", "Closed bar sent → all readings back",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)

# ------------------------------------------------------------------------- decisions
DECISIONS = Counter(
    "casino_decisions_total", "Player decisions", ["side"], registry=REGISTRY,
)
SKIPS = Counter(
    "casino_skips_total", "Bars the player or risk gate skipped, by reason", ["reason"], registry=REGISTRY,
)
DECISION_LATENCY_SECONDS = Histogram(
    "casino_decision_latency_seconds", "Closed candle received → entry request written",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
DECISION_SENSOR_WAIT_SECONDS = Histogram(
    "casino_decision_sensor_wait_seconds",
    "Part of a decision's latency spent waiting for the sensor pool (closed bars sent → readings back)",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
BAR_LATENCY_SECONDS = Histogram(
    "casino_bar_latency_seconds", "Closed candle received → the player's verdict (every bar, decision or skip)",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
MARKET_BURST_CANDLES = Histogram(
    "casino_market_burst_candles", "Closed candles the engine took from the market stream in one burst",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=REGISTRY,
)
RISK_REJECTIONS = Counter(
    "casino_risk_rejections_total", "Orders the risk gate refused", ["reason"], registry=REGISTRY,
)
TRADING_STATE = Gauge(
    "casino_trading_state", "Risk gate state: 0 active, 1 reducing, 2 halted", registry=REGISTRY,
)
SENSOR_SCORE = Gauge(
    "casino_sensor_score", "Adaptive score of each sensor", ["sensor"], registry=REGISTRY,
)
BAD_READINGS = Counter(
    "casino_bad_readings_total", "Sensor readings or bars the player ignored as bad input, by reason",
    ["reason"], registry=REGISTRY,
)
TRACKER_VOTES = Counter(
    "casino_tracker_votes_total", "Sensor votes the tracker resolved (win, loss, expired) or dropped",
    ["outcome"], registry=REGISTRY,
)
SIZING_SKIPS = Counter(
    "casino_sizing_skips_total", "Decisions sizing could not turn into a valid quantity, by reason",
    ["reason"], registry=REGISTRY,
)

# ------------------------------------------------------------------------ croupier
TRADES = Counter(
    "casino_trades_total", "Closed trades", ["symbol", "side", "outcome"], registry=REGISTRY,
)
POSITIONS_OPEN = Gauge(
    "casino_positions_open", "Open positions", registry=REGISTRY,
)
POSITIONS_UNPROTECTED = Gauge(
    "casino_positions_unprotected", "Filled positions without an acknowledged stop", registry=REGISTRY,
)
UNPROTECTED_SECONDS = Histogram(
    "casino_unprotected_seconds", "First fill → stop-loss acknowledged",
    buckets=_PROTECT_BUCKETS, registry=REGISTRY,
)
TIME_TO_PROTECT_SECONDS = Histogram(
    "casino_time_to_protect_seconds",
    "First entry fill applied → stop-loss acknowledged, in real time (casino_unprotected_seconds "
    "is on the session clock, which a paper session runs faster than real time)",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
BRACKETS = Counter(
    "casino_brackets_total", "Brackets reaching a final state", ["state"], registry=REGISTRY,
)
RECONCILE_DISCREPANCIES = Counter(
    "casino_reconcile_discrepancies_total", "Differences found between local state and the exchange",
    ["kind"], registry=REGISTRY,
)

# ------------------------------------------------------------------------- account
BALANCE_USDT = Gauge(
    "casino_balance_usdt", "Wallet balance in USDT", registry=REGISTRY,
)
EQUITY_USDT = Gauge(
    "casino_equity_usdt", "Wallet balance plus unrealized PnL", registry=REGISTRY,
)
REALIZED_PNL_USDT = Gauge(
    "casino_realized_pnl_usdt", "Realized PnL this session, net of fees and funding", registry=REGISTRY,
)
UNREALIZED_PNL_USDT = Gauge(
    "casino_unrealized_pnl_usdt", "Unrealized PnL at mark", registry=REGISTRY,
)
DRAWDOWN_FRACTION = Gauge(
    "casino_drawdown_fraction", "Drawdown from the session's equity peak (0.01 = 1 %)", registry=REGISTRY,
)

# -------------------------------------------------------------------------- engine
QUEUE_DEPTH = Gauge(
    "casino_queue_depth", "Depth of the engine's bounded queues", ["queue"], registry=REGISTRY,
)
LOOP_LAG_SECONDS = Histogram(
    "casino_event_loop_lag_seconds", "Event loop scheduling lag", buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
