"""The operator endpoints answer over real loopback HTTP; /metrics parses as Prometheus text."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import POSITIONS_OPEN, SKIPS
from core.observability import ObservabilityServer


async def test_endpoints_over_loopback() -> None:
    state = {"ready": False}
    server = ObservabilityServer(
        "127.0.0.1", 0, status=lambda: {"mode": "paper", "drain": False}, ready=lambda: state["ready"]
    )
    await server.start()
    POSITIONS_OPEN.set(2)
    SKIPS.labels(reason="cooldown").inc(3)
    base = f"http://127.0.0.1:{server.bound_port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as r:
                assert r.status == 200
            async with http.get(f"{base}/ready") as r:
                assert r.status == 503
            state["ready"] = True
            async with http.get(f"{base}/ready") as r:
                assert r.status == 200
            async with http.get(f"{base}/status") as r:
                assert (await r.json()) == {"mode": "paper", "drain": False}
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
    finally:
        await server.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["casino_positions_open"].samples[0].value == 2
    skips = {s.labels["reason"]: s.value for s in families["casino_skips"].samples if s.name == "casino_skips_total"}
    assert skips["cooldown"] >= 3
    assert "casino_unprotected_seconds" in families
