"""Issue 4's loopback list: the connector under the simulator's injected faults.

Unknown outcomes resolved by client id without a duplicate, breakers opening and recovering,
429 / 418 handling, -1021 after a skewed clock, and both signing schemes end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal as D
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from config.secrets import Secrets
from core.errors import AuthError, Banned, CircuitOpen, RateLimited, Rejected, Retryable, UnknownOutcome
from core.metrics import API_ERRORS
from core.types import (
    AlgoOrderRequest,
    AlgoStatus,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Timeframe,
    WorkingType,
)
from exchanges.binance.breaker import BreakerState
from exchanges.binance.client import BinanceFutures
from exchanges.sim.feed import SymbolData
from exchanges.sim.limits import RateLimiter as SimRateLimiter
from exchanges.sim.server import SimServer
from tests.binance_sim import KEY, SECRET, SETTINGS, SkewedClock, connector, load_recorded, running, sim_server
from tests.binance_sim import client, recorded, server  # noqa: F401 - shared fixtures

T = TypeVar("T")


async def nudged(server: SimServer, call: Awaitable[T], step_s: float = 0.1) -> T:
    """Await ``call`` while nudging the manual clock: the connector's backoff sleeps on it."""
    task = asyncio.ensure_future(call)
    async with asyncio.timeout(5):
        while not task.done():
            await asyncio.sleep(0.005)
            await server.advance(step_s)
    return task.result()


def _buy(cid: str) -> OrderRequest:
    return OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, D("0.010"), cid)


def _errors(endpoint: str, code: str) -> float:
    return API_ERRORS.labels(endpoint=endpoint, code=code)._value.get()


@pytest.mark.parametrize("mode", ["503", "-1007", "timeout"])
async def test_unknown_outcome_is_resolved_by_client_id_without_duplicate(
        recorded: dict[str, SymbolData], mode: str) -> None:
    settings = SETTINGS.model_copy(update={"request_timeout_s": 0.2})
    async with running(sim_server(recorded)) as server:
        client = connector(server, settings=settings)
        try:
            await client.start()
            server.faults.lose_response("/fapi/v1/order", mode=mode, method="POST", delay_s=0.4)
            with pytest.raises(UnknownOutcome) as lost:
                await client.place_order(_buy("uo-1"))
            assert lost.value.client_id == "uo-1"
            # Resolve: ask for the client id. The order exists and filled once.
            found = await client.query_order("BTCUSDT", client_order_id=lost.value.client_id)
            assert found.status is OrderStatus.FILLED and found.executed_qty == D("0.010")
            assert [t.order_id for t in await client.user_trades("BTCUSDT")] == [found.order_id]
            [pos] = await client.positions("BTCUSDT")
            assert pos.quantity == D("0.010")  # not 0.020: nothing was resent

            mark = (await client.mark_price("BTCUSDT")).mark_price
            server.faults.lose_response("/fapi/v1/algoOrder", mode=mode, method="POST", delay_s=0.4)
            with pytest.raises(UnknownOutcome) as lost_algo:
                await client.place_algo_order(AlgoOrderRequest(
                    "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "uo-sl", close_position=True,
                    trigger_price=(mark * D("0.9")).quantize(D("0.1")), working_type=WorkingType.MARK_PRICE))
            assert lost_algo.value.client_id == "uo-sl"
            algo = await client.query_algo_order("BTCUSDT", client_algo_id="uo-sl")
            assert algo.status is AlgoStatus.NEW
            assert [a.client_algo_id for a in await client.open_algo_orders("BTCUSDT")] == ["uo-sl"]
        finally:
            await client.close()


async def test_breaker_opens_fails_fast_and_recovers(server: SimServer, client: BinanceFutures) -> None:
    server.faults.fail("/fapi/v1/openOrders", status="500", count=5)
    with pytest.raises(Retryable):  # 3 attempts, all 500
        await nudged(server, client.open_orders("BTCUSDT"))
    with pytest.raises(CircuitOpen):  # 2 more failures reach the threshold of 5; the third attempt fails fast
        await nudged(server, client.open_orders("BTCUSDT"))
    assert client.breaker_states()["orders"] is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await client.place_order(_buy("entry-while-open"))  # entries fail fast …
    with pytest.raises(CircuitOpen):
        await client.query_order("BTCUSDT", client_order_id="entry-while-open")
    # … but protection still tries: a cancel-all reaches the venue while the breaker is open.
    await client.cancel_all_orders("BTCUSDT")
    await server.advance(61)  # the breaker's open period passes on the venue's clock
    assert client.breaker_states()["orders"] is BreakerState.HALF_OPEN
    for _ in range(3):
        assert await client.open_orders("BTCUSDT") == []
    assert client.breaker_states()["orders"] is BreakerState.CLOSED
    order = await client.place_order(_buy("entry-after"))
    assert order.status is OrderStatus.FILLED


async def test_429_holds_the_pool_until_retry_after_and_reads_retry(server: SimServer, client: BinanceFutures) -> None:
    server.faults.force_rate_limit(1)
    mark = await nudged(server, client.mark_price("BTCUSDT"), step_s=1.0)  # waits out Retry-After, retries
    assert mark.mark_price > 0
    server.faults.force_rate_limit(1)
    with pytest.raises(RateLimited) as limited:
        await client.place_order(_buy("rl-1"))  # a write is not retried by the transport …
    assert limited.value.retry_after_s > 0
    assert await nudged(server, client.open_orders(), step_s=1.0) == []  # … and was never applied


@pytest.mark.parametrize("local_skew_ms", [0, 3_600_000, -3_600_000], ids=["same-clock", "ahead-1h", "behind-1h"])
async def test_418_bans_the_whole_client_until_the_stated_time(server: SimServer, local_skew_ms: int) -> None:
    # The ban's end is stated in the venue's time; a machine clock an hour off must not matter.
    client = connector(server, clock=SkewedClock(server.clock, local_skew_ms))
    await client.start()
    try:
        await _banned_until_stated_time(server, client)
    finally:
        await client.close()


async def _banned_until_stated_time(server: SimServer, client: BinanceFutures) -> None:
    server.faults.force_ban(120)
    with pytest.raises(Banned) as banned:
        await client.mark_price("BTCUSDT")
    until = banned.value.until_ms
    assert until == server.limiter.banned_until_ms  # the time the venue stated, in its own clock
    assert 119_000 <= until - server.clock.now_ms() <= 121_000
    calls = _errors("/fapi/v3/balance", "418")
    await server.advance(100)
    with pytest.raises(Banned):  # the client refuses locally: nothing is sent during a ban
        await client.balances()
    assert _errors("/fapi/v3/balance", "418") == calls
    await server.advance(21)
    assert (await client.mark_price("BTCUSDT")).mark_price > 0


async def test_clock_skew_gets_one_resync_and_one_retry(server: SimServer, client: BinanceFutures) -> None:
    before = _errors("/fapi/v1/order", "-1021")
    server.faults.skew_clock(30_000)  # the venue's clock jumps 30 s ahead of ours
    order = await client.place_order(_buy("skew-1"))
    assert order.status is OrderStatus.FILLED
    assert _errors("/fapi/v1/order", "-1021") == before + 1
    assert 29_000 <= client.http.time_sync.offset_ms <= 31_000
    assert len(await client.user_trades("BTCUSDT")) == 1


async def test_ed25519_signing_end_to_end(recorded: dict[str, SymbolData], tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "casino-ed25519.pem"
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    async with running(sim_server(recorded, ed25519_keys={"ed-key": public})) as server:
        client = connector(server, secrets=Secrets(api_key="ed-key", ed25519_key_file=pem))
        try:
            await client.start()
            order = await client.place_order(_buy("ed-1"))
            assert (await client.query_order("BTCUSDT", order_id=order.order_id)).status is OrderStatus.FILLED
            assert [p.quantity for p in await client.positions()] == [D("0.010")]
        finally:
            await client.close()
        other = Ed25519PrivateKey.generate()
        (tmp_path / "other.pem").write_bytes(other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        impostor = connector(server, secrets=Secrets(api_key="ed-key", ed25519_key_file=tmp_path / "other.pem"))
        try:
            with pytest.raises(AuthError) as bad:
                await impostor.balances()
            assert bad.value.code == -1022
        finally:
            await impostor.close()


async def test_hmac_signing_end_to_end(server: SimServer) -> None:
    good = connector(server, secrets=Secrets(api_key=KEY, api_secret=SECRET))
    wrong = connector(server, secrets=Secrets(api_key=KEY, api_secret=SECRET + "x"))
    unknown = connector(server, secrets=Secrets(api_key="nobody", api_secret=SECRET))
    try:
        await good.start()
        assert (await good.place_order(_buy("hmac-1"))).status is OrderStatus.FILLED
        with pytest.raises(AuthError) as bad_sig:
            await wrong.balances()
        assert bad_sig.value.code == -1022
        with pytest.raises(AuthError) as bad_key:
            await unknown.balances()
        assert bad_key.value.code == -2015
    finally:
        for c in (good, wrong, unknown):
            await c.close()


async def test_a_lost_cancel_answer_is_resolved_by_querying(server: SimServer, client: BinanceFutures) -> None:
    mark = (await client.mark_price("BTCUSDT")).mark_price
    order = await client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"), "lc-1",
                                                  price=(mark * D("0.9")).quantize(D("0.1")),
                                                  time_in_force=TimeInForce.GTC))
    server.faults.lose_response("/fapi/v1/order", mode="503", method="DELETE")
    with pytest.raises(UnknownOutcome) as lost:
        await client.cancel_order("BTCUSDT", client_order_id="lc-1")
    assert lost.value.client_id == "lc-1"
    assert (await client.query_order("BTCUSDT", order_id=order.order_id)).status is OrderStatus.CANCELED
    assert await client.open_orders("BTCUSDT") == []
    with pytest.raises(Rejected) as again:  # cancelling twice is a definitive no, not a new unknown
        await client.cancel_order("BTCUSDT", client_order_id="lc-1")
    assert again.value.code == -2011


async def test_a_burst_waits_for_the_window_instead_of_drawing_429s(recorded: dict[str, SymbolData]) -> None:
    limiter = SimRateLimiter(weight_limit=100, orders_10s_limit=12, orders_1m_limit=1200)
    async with running(sim_server(recorded, limiter=limiter)) as server:
        client = connector(server)
        try:
            await client.start()
            before = _errors("/fapi/v1/klines", "429") + _errors("/fapi/v1/order", "429")
            mark = (await client.mark_price("BTCUSDT")).mark_price
            price = (mark * D("0.9")).quantize(D("0.1"))

            async def burst() -> tuple[list[object], list[object]]:
                reads = [client.klines(s, Timeframe.M1, start_ms=server.clock.now_ms() - 3_600_000, limit=600)
                         for s in ("BTCUSDT", "ETHUSDT") * 15]  # 30 × weight 5 = 150 > 100 per minute
                writes = [client.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.010"),
                                                          f"burst-{i}", price=price, time_in_force=TimeInForce.GTC))
                          for i in range(20)]  # 20 orders > 12 per 10 s
                return await asyncio.gather(*reads), await asyncio.gather(*writes)

            klines, orders = await nudged(server, burst(), step_s=1.0)
            assert len(klines) == 30 and all(len(k) >= 59 for k in klines)  # type: ignore[arg-type]
            assert len(orders) == 20 and len(await client.open_orders("BTCUSDT")) == 20
            assert _errors("/fapi/v1/klines", "429") + _errors("/fapi/v1/order", "429") == before
            assert server.limiter.violations == 0
        finally:
            await client.close()
