"""Nothing a request brings stays alive after it: big bodies and many distinct tool arrays leave memory at idle."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from tests.conftest import GATEWAY
from tests.reliability.faults import ok_response

CAPTURE = Path(__file__).parents[1] / "fixtures/captures/messages_main_after_read_tool_result.json"
CANNED = ok_response("Done.")
MB = 1024 * 1024
# What may stay after the requests: the one small (Claude Code) tool set kept in the cache (~70 KB), the metrics'
# label children and interpreter free lists. The request bodies themselves are 20 MB and 100 x 1 MB.
IDLE_SLACK = 256 * 1024  # bytes (measured: ~1 KB and ~34 KB; before the digest-keyed cache, 21 MB and 72 MB)


def _claude_code_body(text: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(CAPTURE.read_text())["request"]["body"]
    body["stream"] = False
    body["messages"] = [{"role": "user", "content": text}]
    return body


def _big_tools(i: int) -> list[dict[str, Any]]:
    """About 1 MB of tools, distinct per `i`."""
    schema = {"type": "object", "properties": {"x": {"type": "string", "description": f"{i} " + "d" * 100_000}}}
    return [{"name": f"tool_{i}_{n}", "input_schema": schema} for n in range(10)]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    settings = Settings(openai_api_key="sk-x", openai_base_url="http://upstream.test/v1", max_retries=0)
    app = create_app(settings, transport=httpx.MockTransport(lambda _: httpx.Response(200, json=CANNED)))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)
    async with app.router.lifespan_context(app), http:
        yield http, app


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    reply = await client.post("/v1/messages", content=json.dumps(body).encode())
    assert reply.status_code == 200, reply.text[:300]


async def _held(app: Starlette) -> int:
    # In process nothing ever waits on I/O, so the finished requests' disconnect watchers (cancelled, scheduled)
    # run only once the loop gets a turn: give it a few. The usage ledger holds each request's row (names and
    # counts) until its batch is written: write it now.
    await app.state.team.writer.flush()
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


# 100 arrays take seconds under tracemalloc: the whole suite sends them all, the quick loop 10 (10 MB kept would show).
@pytest.mark.parametrize("arrays", [pytest.param(10, id="quick"), pytest.param(100, id="full", marks=pytest.mark.slow)])
async def test_memory_returns_to_idle_after_big_requests_and_many_tool_arrays(
    gateway: tuple[httpx.AsyncClient, Starlette], arrays: int
) -> None:
    client, app = gateway
    for _ in range(2):  # warm-up: lazily built objects of the app and the metrics exist before measuring
        await _post(client, _claude_code_body("Hi"))
    await _post(client, {**_claude_code_body("Hi"), "tools": _big_tools(-1)})
    tracemalloc.start()
    try:
        idle = await _held(app)
        await _post(client, _claude_code_body("x" * (20 * MB)))
        after_big_body = await _held(app) - idle
        for i in range(arrays):
            await _post(client, {**_claude_code_body("Hi"), "tools": _big_tools(i)})
        after_tool_arrays = await _held(app) - idle
    finally:
        tracemalloc.stop()
    assert after_big_body < IDLE_SLACK, after_big_body
    assert after_tool_arrays < IDLE_SLACK, after_tool_arrays
