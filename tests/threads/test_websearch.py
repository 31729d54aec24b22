"""A threaded turn answered by the gateway's own web search (a static stream, a live stream, or a Message) is
stored like any reply: renamed, continued once, and its blocks are part of the rebuilt history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from messages_bridge.app.tenant import tenant_of
from messages_bridge.demo.server import Reply
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.store import StoredThread
from tests.conftest import GATEWAY, FakeUpstream
from tests.fake_searxng import SearxScript, create_searxng_app
from tests.servers import ThreadedServer, serving
from tests.streamkit import fold, parse_sse
from tests.threads.helpers import BETA, error_code
from tests.websearch.kit import subrequest


@pytest.fixture
def searx() -> Iterator[ThreadedServer]:
    with serving(create_searxng_app(SearxScript(slow_seconds=3.0))) as server:
        yield server


def _continue(previous_message_id: str, *, stream: bool) -> dict[str, Any]:
    """The next turn of a thread: one new user message."""
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 256,
        "stream": stream,
        "output_config": {"effort": "high"},
        "messages": [{"role": "user", "content": "And the one before?"}],
        "thread": {"type": "continue", "previous_message_id": previous_message_id},
    }


def _answer(reply: httpx.Response, stream: bool) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return fold(parse_sse(reply.content)) if stream else reply.json()


@pytest.mark.parametrize("mode", ["off", "gateway"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_web_search_answer_is_stored_and_continued(
    upstream: FakeUpstream, make_settings: Any, app_factory: Any, searx: ThreadedServer, mode: str, stream: bool
) -> None:
    settings = {"web_search_mode": "off"} if mode == "off" else {"web_search_backend_url": searx.url}
    app = await app_factory(make_settings(**settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, headers=BETA) as http:
        first = _answer(
            await http.post("/v1/messages", json={**subrequest(stream=stream), "thread": {"type": "create"}}), stream
        )
        assert first["id"].startswith("msg_01")
        assert [b["type"] for b in first["content"]][:2] == ["server_tool_use", "web_search_tool_result"]
        store = app.state.gateway.threads.store
        assert isinstance(store, MemoryThreadStore) and len(store) == 1
        tenant = tenant_of(BETA, app.state.gateway.keys)
        held = await store.acquire(tenant, first["id"], "peek")  # the store's own reading, lease freed at once
        await store.release(tenant, first["id"], "peek")
        assert isinstance(held, StoredThread)
        assert json.loads(bytes(held.messages[-1]))["content"] == first["content"]  # exactly as returned
        body = _continue(first["id"], stream=stream)
        _answer(await http.post("/v1/messages", json=body), stream)
        assert error_code(await http.post("/v1/messages", json={**body, "stream": False})) == "thread_already_continued"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_search_loop_refused_before_its_first_event_frees_the_turn(
    upstream: FakeUpstream, make_settings: Any, app_factory: Any, searx: ThreadedServer, stream: bool
) -> None:
    """The streamed loop fails inside its response, before anything is sent: the continue's lease is still freed."""
    app = await app_factory(make_settings(web_search_backend_url=searx.url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, headers=BETA) as http:
        first = _answer(
            await http.post("/v1/messages", json={**subrequest(stream=stream), "thread": {"type": "create"}}), stream
        )
        body = _continue(first["id"], stream=stream)
        refusal = {"error": {"type": "invalid_request_error", "message": "bad input", "code": None, "param": None}}
        upstream.script.push(Reply(status=400, json_body=refusal))
        refused = await http.post("/v1/messages", json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["type"] == "invalid_request_error"
        _answer(await http.post("/v1/messages", json=body), stream)  # not `thread_continue_in_flight`


async def test_a_search_loop_given_up_before_its_first_event_frees_the_turn(
    upstream: FakeUpstream, make_settings: Any, app_factory: Any, searx: ThreadedServer
) -> None:
    """The client leaves while the loop's first round waits on the upstream: the continue's lease is freed."""
    app = await app_factory(make_settings(web_search_backend_url=searx.url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, headers=BETA) as http:
        first = _answer(await http.post("/v1/messages", json={**subrequest(), "thread": {"type": "create"}}), True)
        body = _continue(first["id"], stream=True)
        sent = len(upstream.requests)
        upstream.script.push(Reply(hang=30.0))
        running = asyncio.create_task(http.post("/v1/messages", json=body))
        for _ in range(500):  # until the continue's first round reached the upstream (bounded)
            if len(upstream.requests) > sent:
                break
            await asyncio.sleep(0.01)
        assert len(upstream.requests) == sent + 1
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        _answer(await http.post("/v1/messages", json=body), True)  # not `thread_continue_in_flight`
