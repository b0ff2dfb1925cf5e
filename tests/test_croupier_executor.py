"""OrderExecutor against the simulator through the connector: journal first, classify, resolve."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.secrets import Secrets
from config.settings import ExchangeSettings
from core.errors import Rejected
from core.types import AlgoOrderRequest, OrderRequest, OrderType, Side
from croupier.executor import OrderExecutor
from exchanges.binance.client import BinanceFutures
from exchanges.binance.urls import BinanceUrls
from exchanges.sim.server import SimServer
from exchanges.sim.venue import Venue
from state.journal import EntryKind, Journal, OutcomeStatus, scan
from tests.croupier_harness import KEY, SECRET, recorded

pytestmark = pytest.mark.timeout(30)
QTY = Decimal("0.010")


@pytest.fixture
async def env(data_dir: Path, tmp_path: Path):
    server = SimServer(Venue(recorded(data_dir), warmup_bars=300), api_key=KEY, api_secret=SECRET, admin=True)
    await server.start()
    ex = BinanceFutures(BinanceUrls(rest=server.rest_url, ws=server.ws_url), clock=server.clock,
                        settings=ExchangeSettings(), secrets=Secrets(KEY, SECRET))
    await ex.start()
    journal = Journal.open(tmp_path / "journal.jsonl", server.clock)
    yield server, ex, journal, OrderExecutor(ex, journal, server.clock, attempts=3, backoff_s=0.01)
    journal.close()
    await ex.close()
    await server.stop()


def _kinds(journal: Journal) -> list[tuple[str, str]]:
    out = []
    for entry in scan(journal.path).entries:
        status = entry.data.get("status", "")
        out.append((entry.kind.value, status))
    return out


async def test_the_intent_is_on_disk_before_the_request_leaves(env) -> None:
    server, ex, journal, executor = env
    seen_on_disk: list[list[tuple[str, str]]] = []
    real = ex.place_order

    async def spy(request):  # type: ignore[no-untyped-def]
        seen_on_disk.append(_kinds(journal))  # what a crash right now would leave behind
        return await real(request)

    ex.place_order = spy  # type: ignore[method-assign]
    order = await executor.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, QTY, "exintent1"))
    assert order.executed_qty == QTY
    assert seen_on_disk == [[("INTENT", "")]]
    assert _kinds(journal) == [("INTENT", ""), ("OUTCOME", "ACCEPTED")]
    assert journal.pending() == []


@pytest.mark.parametrize("mode", ["503", "-1007", "timeout"])
async def test_unknown_outcome_is_resolved_by_client_id_and_never_resent(env, mode: str) -> None:
    server, ex, journal, executor = env
    server.faults.lose_response("/fapi/v1/order", mode=mode, method="POST", delay_s=0.2)
    order = await executor.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, QTY, "exlost1"))
    assert order.client_order_id == "exlost1" and order.executed_qty == QTY
    positions = [p for p in await ex.positions("BTCUSDT") if not p.is_flat]
    assert positions[0].quantity == QTY  # applied once, not twice
    statuses = [s for k, s in _kinds(journal) if k == "OUTCOME"]
    assert statuses == ["UNKNOWN", "ACCEPTED"] and journal.pending() == []


async def test_a_request_that_never_arrived_is_sent_again_under_the_same_id(env) -> None:
    server, ex, journal, executor = env
    server.faults.fail("/fapi/v1/order", status="503", method="POST")  # not applied; retryable
    order = await executor.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, QTY, "exretry1"))
    assert order.executed_qty == QTY
    outcomes = [s for k, s in _kinds(journal) if k == "OUTCOME"]
    assert outcomes == [OutcomeStatus.NOT_SENT.value, OutcomeStatus.ACCEPTED.value]
    assert [p.quantity for p in await ex.positions("BTCUSDT") if not p.is_flat] == [QTY]


async def test_a_duplicate_client_id_resolves_to_the_existing_order(env) -> None:
    server, ex, journal, executor = env
    mark = (await ex.mark_price("BTCUSDT")).mark_price
    request = AlgoOrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, "exdup1",
                               trigger_price=(mark * Decimal("0.9")).quantize(Decimal("0.1")), close_position=True)
    first = await ex.place_algo_order(request)  # e.g. sent by a process that then crashed
    again = await executor.place_algo(request)
    assert again.algo_id == first.algo_id
    assert len(await ex.open_algo_orders("BTCUSDT")) == 1


async def test_a_definitive_rejection_is_raised_and_journaled(env) -> None:
    server, ex, journal, executor = env
    with pytest.raises(Rejected) as info:  # reduce-only with no position: -2022
        await executor.place_order(OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, QTY, "exrej1",
                                                reduce_only=True))
    assert info.value.code == -2022
    assert [s for k, s in _kinds(journal) if k == "OUTCOME"] == ["REJECTED"]


async def test_cancelling_an_order_that_is_gone_answers_false(env) -> None:
    server, ex, journal, executor = env
    assert await executor.cancel_order("BTCUSDT", "neverplaced") is False
    assert await executor.cancel_algo("BTCUSDT", "neverplaced") is False
    assert [k for k, _ in _kinds(journal)] == [EntryKind.INTENT.value, EntryKind.OUTCOME.value] * 2
