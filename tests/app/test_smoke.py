"""First end-to-end checks through the ASGI app with the fake upstream over HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import FakeUpstream


async def test_plain_message_round_trip(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]}
    reply = await client.post("/v1/messages", json=body)
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert message["model"] == "claude-sonnet-4-5"
    assert message["content"][0]["text"].endswith("You said: Hello there")
    assert reply.headers["request-id"].startswith("req_")
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-5" and sent["max_output_tokens"] == 64 and sent["store"] is False
    assert upstream.script.received[-1].headers["authorization"] == "Bearer sk-upstream-secret"
