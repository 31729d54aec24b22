"""Threads through the app (in-process) against the simulator upstream on 127.0.0.1: what the upstream receives,
each rejection with its `error_code` before any upstream call, streaming, tenants, threads off, the access record."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from messages_bridge.app.state import GatewayState
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.threads.helpers import (
    BETA,
    SYSTEM,
    Clock,
    continue_,
    create,
    error_code,
    on_clock,
    sse_message,
    tool_results,
)

AppFactory = Callable[[Settings], Any]


@pytest.fixture
async def gateway(
    app_factory: AppFactory, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayState]]:
    app = await app_factory(make_settings(api_keys="key-a,key-b"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=GATEWAY, headers={**BETA, "x-api-key": "key-a"}
    ) as http:
        yield http, app.state.gateway


async def _loop(http: httpx.AsyncClient, *, stream: bool) -> tuple[dict[str, Any], list[str]]:
    """A 3-step tool loop over one thread; returns the final message and the reply ids."""
    reply = await http.post("/v1/messages", json=create())
    assert reply.status_code == 200, reply.text
    message, ids = reply.json(), [reply.json()["id"]]
    while message["stop_reason"] == "tool_use":
        body = continue_(message["id"], tool_results(message), stream=stream)
        reply = await http.post("/v1/messages", json=body)
        assert reply.status_code == 200, reply.text
        message = sse_message(reply.text) if stream else reply.json()
        ids.append(message["id"])
    return message, ids


@pytest.mark.parametrize("stream", [False, True])
async def test_a_continue_reaches_the_upstream_as_the_whole_conversation(
    gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream, stream: bool
) -> None:
    http, _ = gateway
    message, ids = await _loop(http, stream=stream)
    assert message["content"][0]["text"] == "The tool returned 3 results: r1, r2, r3"
    assert len(ids) == len(set(ids)) == 4  # each reply has its own id, though the simulator's ids repeat
    sent = upstream.requests
    assert [len(r["input"]) for r in sent] == [1, 3, 5, 7]  # prompt, then +call +output per turn
    for request in sent:
        assert request["instructions"] == SYSTEM
        assert [t["name"] for t in request["tools"]] == ["step"]
    last = sent[-1]["input"]
    calls = [i["call_id"] for i in last if i["type"] == "function_call"]
    assert calls == [i["call_id"] for i in last if i["type"] == "function_call_output"]


async def test_a_reply_can_be_continued_once(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create())).json()
    assert (await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))).status_code == 200
    again = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    assert again.status_code == 400
    assert again.json()["error"]["type"] == "invalid_request_error"
    assert error_code(again) == "thread_already_continued"
    assert again.headers["x-should-retry"] == "false"


async def test_unknown_expired_and_other_tenants_ids_are_not_found(
    gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream
) -> None:
    http, state = gateway
    clock = Clock()
    store = on_clock(state.threads, clock)
    first = (await http.post("/v1/messages", json=create())).json()
    calls = len(upstream.requests)
    unknown = await http.post("/v1/messages", json=continue_("msg_01nosuchthing", tool_results(first)))
    other = await http.post(
        "/v1/messages", json=continue_(first["id"], tool_results(first)), headers={"x-api-key": "key-b"}
    )
    clock.now += 301  # idle for more than five minutes
    expired = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    for reply in (unknown, other, expired):
        assert reply.status_code == 404, reply.text
        assert reply.json()["error"]["type"] == "not_found_error"
        assert error_code(reply) == "thread_not_found"
    assert len(upstream.requests) == calls  # rejected before any upstream call
    assert len(store) == 0  # the expired thread is gone from memory


async def test_the_other_tenant_continues_its_own_thread(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create(), headers={"x-api-key": "key-b"})).json()
    mine = await http.post(
        "/v1/messages", json=continue_(first["id"], tool_results(first)), headers={"x-api-key": "key-b"}
    )
    assert mine.status_code == 200, mine.text


async def test_a_continue_while_the_previous_one_runs_is_in_flight(
    gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream
) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create())).json()
    upstream.script.push(Reply(hang=30.0))  # the first continue waits on the upstream
    body = continue_(first["id"], tool_results(first), stream=True)
    running = asyncio.create_task(http.post("/v1/messages", json=body))
    for _ in range(500):
        if len(upstream.requests) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(upstream.requests) == 2
    second = await http.post("/v1/messages", json=body)
    assert second.status_code == 400
    assert error_code(second) == "thread_continue_in_flight"
    running.cancel()  # the client gives up: the lease is freed, the head stays continuable
    with pytest.raises(asyncio.CancelledError):
        await running
    third = await http.post("/v1/messages", json=body)
    assert third.status_code == 200, third.text


async def test_a_changed_fixed_field_is_a_fingerprint_mismatch(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create(output_config={"effort": "low"}))).json()
    changed = await http.post(
        "/v1/messages", json=continue_(first["id"], tool_results(first), output_config={"effort": "high"})
    )
    assert changed.status_code == 400
    assert error_code(changed) == "thread_fingerprint_mismatch"
    assert "`output_config`" in changed.json()["error"]["message"]
    # The same value in another key order is not a change, and the rejection left the head continuable.
    same = await http.post(
        "/v1/messages", json=continue_(first["id"], tool_results(first), output_config={"effort": "low"})
    )
    assert same.status_code == 200, same.text


async def test_a_continue_may_not_change_system_or_tools(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create())).json()
    changed = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first), system="Other."))
    assert changed.status_code == 400
    assert "system" in changed.json()["error"]["message"]
    repeated = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first), system=SYSTEM))
    assert repeated.status_code == 200, repeated.text


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failed_turn_stores_nothing_and_keeps_the_head(
    gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream, stream: bool
) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create())).json()
    body = continue_(first["id"], tool_results(first), stream=stream)
    if stream:  # the upstream stream ends before its terminal event: an in-band error, no message_stop
        created = {"type": "response.created", "response": {"id": "resp_x", "status": "in_progress", "output": []}}
        cut = b"event: response.created\ndata: " + json.dumps(created).encode() + b"\n\n"
        upstream.script.push(Reply(chunks=[cut]))
    else:
        upstream.script.push(Reply(status=500, json_body={"error": {"message": "boom", "type": "server_error"}}))
    failed = await http.post("/v1/messages", json=body)
    assert ("event: error" in failed.text) if stream else failed.status_code == 500
    retried = await http.post("/v1/messages", json=body)
    assert retried.status_code == 200, retried.text


async def test_a_refusal_is_not_stored(gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create())).json()
    refusal = {
        "id": "resp_r",
        "object": "response",
        "created_at": 1,
        "model": "gpt-5",
        "status": "completed",
        "output": [
            {
                "id": "msg_r",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "refusal", "refusal": "no"}],
            }
        ],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }
    upstream.script.push(Reply(json_body=refusal))
    refused = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    assert refused.json()["stop_reason"] == "refusal"
    gone = await http.post("/v1/messages", json=continue_(refused.json()["id"], [{"role": "user", "content": "hi"}]))
    assert error_code(gone) == "thread_not_found"
    kept = await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    assert kept.status_code == 200, kept.text


async def test_empty_messages_resume_and_tool_changes_apply(
    gateway: tuple[httpx.AsyncClient, GatewayState], upstream: FakeUpstream
) -> None:
    http, _ = gateway
    first = (await http.post("/v1/messages", json=create("Say hello"))).json()
    removal = {
        "role": "system",
        "content": [{"type": "tool_removal", "tool": {"type": "tool_reference", "name": "step"}}],
    }
    removed = await http.post("/v1/messages", json=continue_(first["id"], [removal, {"role": "user", "content": "Go"}]))
    assert removed.status_code == 200, removed.text
    assert "tools" not in upstream.requests[-1] or upstream.requests[-1]["tools"] == []
    resumed = await http.post("/v1/messages", json=continue_(removed.json()["id"], []))
    assert resumed.status_code == 200, resumed.text
    added = {
        "role": "system",
        "content": [{"type": "tool_addition", "tool": {"type": "tool_reference", "name": "step"}}],
    }
    back = await http.post(
        "/v1/messages", json=continue_(resumed.json()["id"], [added, {"role": "user", "content": "Go on"}])
    )
    assert back.status_code == 200, back.text
    assert [t["name"] for t in upstream.requests[-1]["tools"]] == ["step"]
    roles = [i.get("role") for i in upstream.requests[-1]["input"] if i.get("type") == "message"]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # the resumed reply joins the one before it


async def test_threads_off_rejects_every_thread_before_the_upstream(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    app = await app_factory(make_settings(threads=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        for body in (create(), continue_("msg_01x", [{"role": "user", "content": "hi"}])):
            reply = await http.post("/v1/messages", json=body)
            assert reply.status_code == 400
            assert error_code(reply) == "thread_unsupported_request"
        plain = await http.post("/v1/messages", json={k: v for k, v in create().items() if k != "thread"})
        assert plain.status_code == 200
    assert len(upstream.requests) == 1


async def test_count_tokens_takes_no_thread(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    body = {k: v for k, v in create().items() if k not in ("max_tokens",)}
    reply = await http.post("/v1/messages/count_tokens", json=body)
    assert reply.status_code == 400
    assert error_code(reply) == "thread_unsupported_request"


async def test_a_malformed_thread_is_a_plain_invalid_request(gateway: tuple[httpx.AsyncClient, GatewayState]) -> None:
    http, _ = gateway
    for thread in ({"type": "fork"}, {"type": "continue"}, "create"):
        reply = await http.post("/v1/messages", json={**create(), "thread": thread})
        assert reply.status_code == 400
        assert "details" not in reply.json()["error"]
    assert (await http.post("/v1/messages", json={**create(), "thread": None})).status_code == 200


async def test_the_access_record_says_what_happened_without_content(
    gateway: tuple[httpx.AsyncClient, GatewayState], caplog: pytest.LogCaptureFixture
) -> None:
    http, _ = gateway
    caplog.set_level(logging.INFO, logger="messages_bridge.access")
    secret = "canary-7f3a91"
    first = (await http.post("/v1/messages", json=create(f"Please call `step` 3 times {secret}"))).json()
    await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    await http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
    replay = {
        **create(),
        "messages": [*create()["messages"], {"role": "assistant", "content": first["content"]}, *tool_results(first)],
    }
    await http.post("/v1/messages", json=replay)
    records = [r.__dict__["access"] for r in caplog.records if "access" in r.__dict__]
    assert [r["thread"] for r in records] == ["created", "continued", "rejected", "replayed"]
    assert records[0]["thread_turns"] == 1 and records[0]["thread_stored"] is True
    assert records[1]["thread_turns"] == 2 and records[1]["thread_bytes"] > records[0]["thread_bytes"]
    assert records[2]["thread_error"] == "thread_already_continued"
    assert secret not in json.dumps(records)
    metrics = (await http.get("/metrics")).text
    assert 'messages_bridge_thread_requests_total{outcome="continued",stored="true"}' in metrics
    assert 'messages_bridge_thread_requests_total{outcome="rejected",stored="false"}' in metrics
