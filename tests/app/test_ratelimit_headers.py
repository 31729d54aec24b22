"""Upstream `x-ratelimit-*` headers reach clients as `anthropic-ratelimit-*` (success, stream and errors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from messages_bridge.demo.simulator import respond
from tests.conftest import FakeUpstream

LIMITS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "2m0s",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "30s",
}
BODY: dict[str, Any] = {"model": "claude-sonnet-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _upstream_request(stream: bool) -> dict[str, Any]:
    return {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}], **({"stream": True} if stream else {})}


def _assert_mapped(headers: httpx.Headers) -> None:
    assert headers["anthropic-ratelimit-requests-limit"] == "500"
    assert headers["anthropic-ratelimit-requests-remaining"] == "499"
    assert headers["anthropic-ratelimit-tokens-limit"] == "30000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "29000"
    reset = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(reset - (datetime.now(UTC) + timedelta(minutes=2))) < timedelta(seconds=5)


async def test_non_stream_success_carries_ratelimit_headers(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    upstream.script.push(Reply(json_body=respond(_upstream_request(False)), headers=LIMITS))
    reply = await client.post("/v1/messages", json=BODY)
    assert reply.status_code == 200
    _assert_mapped(reply.headers)


async def test_stream_carries_ratelimit_headers(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    sse = encode_sse(events_for(respond(_upstream_request(True))))
    upstream.script.push(Reply(chunks=[sse], headers={**LIMITS, "content-type": "text/event-stream"}))
    reply = await client.post("/v1/messages", json={**BODY, "stream": True})
    assert reply.status_code == 200 and b"message_stop" in reply.content
    _assert_mapped(reply.headers)


async def test_rate_limited_error_carries_ratelimit_and_retry_after(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    error = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    upstream.script.push(Reply(status=429, json_body=error, headers={**LIMITS, "retry-after": "30"}))
    reply = await client.post("/v1/messages", json=BODY)
    assert reply.status_code == 429 and reply.json()["error"]["type"] == "rate_limit_error"
    assert reply.headers["retry-after"] == "30"
    assert len(upstream.requests) == 1  # a long retry-after is passed on, not waited out
    _assert_mapped(reply.headers)
