"""`/readyz` caches its upstream probe; no path builds a redirect from the client's `Host` header."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.app.readiness import READY_CACHE_SECONDS, ReadinessProbe
from messages_bridge.config import Settings
from tests.conftest import GATEWAY


class Upstream:
    """A MockTransport upstream that counts the probes (`GET /models`) it receives."""

    def __init__(self) -> None:
        self.probes = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            self.probes += 1
        return httpx.Response(200, json={"data": []})


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[httpx.AsyncClient, Upstream]]:
    upstream = Upstream()
    settings = Settings.model_validate(
        {"openai_api_key": "sk-probe-test", "openai_base_url": "http://upstream.test/v1"}
    )
    app = create_app(settings, transport=httpx.MockTransport(upstream.handle))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)
    async with app.router.lifespan_context(app), http:
        yield http, upstream


async def test_a_probe_flood_is_one_upstream_probe(gateway: tuple[httpx.AsyncClient, Upstream]) -> None:
    http, upstream = gateway
    replies = [await http.get("/readyz") for _ in range(50)]
    assert {r.status_code for r in replies} == {200}
    assert upstream.probes == 1


async def test_the_cached_answer_expires_and_failures_are_cached_too() -> None:
    now = [100.0]
    answers = [True, False, True]
    calls: list[float] = []

    async def probe() -> bool:
        calls.append(now[0])
        return answers[len(calls) - 1]

    readiness = ReadinessProbe(probe, ttl=READY_CACHE_SECONDS, clock=lambda: now[0])
    assert await readiness.ready() is True
    now[0] += READY_CACHE_SECONDS - 0.1
    assert await readiness.ready() is True and len(calls) == 1  # still fresh
    now[0] += 0.2
    assert await readiness.ready() is False and len(calls) == 2  # expired: probed again
    assert await readiness.ready() is False and len(calls) == 2  # an unreachable upstream is not hammered either
    now[0] += READY_CACHE_SECONDS
    assert await readiness.ready() is True and len(calls) == 3


async def test_concurrent_callers_share_one_probe() -> None:
    release = asyncio.Event()
    calls = 0

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        await release.wait()
        return True

    readiness = ReadinessProbe(probe)
    waiting = [asyncio.create_task(readiness.ready()) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [True] * 20
    assert calls == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models/"), ("POST", "/v1/messages/"), ("POST", "/v1/messages/count_tokens/"), ("GET", "/healthz/")],
)
async def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_clients_host(
    gateway: tuple[httpx.AsyncClient, Upstream], method: str, path: str
) -> None:
    http, _ = gateway
    reply = await http.request(method, path, headers={"host": "evil.example"}, json={})
    assert reply.status_code == 404 and "location" not in reply.headers
    assert reply.json()["error"]["type"] == "not_found_error"
    assert "evil.example" not in reply.text
