"""End to end: the official anthropic SDKs → the gateway (uvicorn on 127.0.0.1) → the fake upstream (127.0.0.1).

The current SDK (2.x: `anthropic-version: 2026-10-21`, Bearer auth) runs in this process; the 0.x SDK
(`2023-06-01`, `x-api-key`) runs in a subprocess from its own folder (tests/e2e/sdk0). Responses are validated
strictly by the SDK models, and every upstream request by the fixture's schema check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.translate.signatures import decode_signature
from tests.conftest import FakeUpstream
from tests.e2e.sdk0 import CHECK_SCRIPT, REPO_ROOT, ensure_installed
from tests.servers import ThreadedServer, serving

KEY = "gw-e2e-key"
MODEL = "claude-sonnet-5"
TOOL: anthropic.types.ToolParam = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Use get_weather for `Paris`"}]


@dataclass
class Gateway:
    server: ThreadedServer
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def gateway(make_settings: Callable[..., Settings]) -> Iterator[Gateway]:
    """The gateway with client keys and no upstream retries, recording each request's headers."""
    inner = create_app(make_settings(api_keys=KEY, max_retries=0))
    recorded: list[dict[str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            recorded.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    with serving(app) as server:
        yield Gateway(server, recorded)


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=gateway.url, auth_token=KEY, max_retries=0, _strict_response_validation=True)
    yield client
    client.close()


def test_create_message(sdk: anthropic.Anthropic, gateway: Gateway, upstream: FakeUpstream) -> None:
    message = sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    assert message.model == MODEL and message.stop_reason == "end_turn" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text.endswith("You said: Hello")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = gateway.headers[-1]
    assert sent["anthropic-version"] == "2026-10-21" and sent["authorization"] == f"Bearer {KEY}"
    assert upstream.requests[-1]["max_output_tokens"] == 64


def test_tool_use_round_trip(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    first = sdk.messages.create(model=MODEL, max_tokens=256, tools=[TOOL], messages=ASK)
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    follow: list[anthropic.types.MessageParam] = [
        *ASK,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]},
    ]
    second = sdk.messages.create(model=MODEL, max_tokens=256, tools=[TOOL], messages=follow)
    assert second.stop_reason == "end_turn" and second.content[-1].type == "text"
    assert "18C" in second.content[-1].text
    replay = upstream.requests[-1]["input"]
    assert {"type": "function_call_output", "call_id": tool_use.id, "output": "18C"} in replay


def test_thinking_round_trip(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    """The second turn carries the thinking block back; the upstream gets its reasoning item (id + ciphertext)."""
    thinking: anthropic.types.ThinkingConfigParam = {"type": "adaptive"}
    first = sdk.messages.create(model=MODEL, max_tokens=512, tools=[TOOL], messages=ASK, thinking=thinking)
    blocks = [b for b in first.content if b.type == "thinking"]
    assert len(blocks) == 1 and blocks[0].thinking.startswith("Considering:")
    ref = decode_signature(blocks[0].signature)
    assert ref is not None
    tool_use = next(b for b in first.content if b.type == "tool_use")
    follow: list[anthropic.types.MessageParam] = [
        *ASK,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]},
    ]
    second = sdk.messages.create(model=MODEL, max_tokens=512, tools=[TOOL], messages=follow, thinking=thinking)
    assert second.stop_reason == "end_turn"  # the simulator rejects an id/ciphertext pair that does not match
    reasoning = [i for i in upstream.requests[-1]["input"] if i["type"] == "reasoning"]
    assert reasoning == [
        {
            "type": "reasoning",
            "id": ref.id,
            "encrypted_content": ref.ec,
            "summary": [{"type": "summary_text", "text": blocks[0].thinking}],
        }
    ]


def test_count_tokens_and_models(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script.push(Reply(json_body={"object": "response.input_tokens", "input_tokens": 321}))
    assert sdk.messages.count_tokens(model=MODEL, messages=ASK, tools=[TOOL]).input_tokens == 321
    ids = [m.id for m in sdk.models.list()]
    assert ids and all(i.startswith("claude") for i in ids)
    assert sdk.models.retrieve(ids[0]).id == ids[0]


def test_errors_carry_the_request_id(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script.push(
        Reply(
            status=429,
            json_body={"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
            headers={"retry-after": "3"},
        )
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    exc = caught.value
    assert exc.request_id is not None and exc.request_id == exc.response.headers["request-id"]
    assert exc.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=[])
    assert bad.value.request_id == bad.value.response.headers["request-id"]


def test_wrong_key_is_an_authentication_error(gateway: Gateway) -> None:
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="nope", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError),
    ):
        client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.slow  # a second Python process importing its own SDK: seconds; the 2.x SDK above runs in process
def test_sdk_0x_in_a_subprocess(gateway: Gateway, upstream: FakeUpstream) -> None:
    target = ensure_installed()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO_ROOT)])}
    done = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), gateway.url, KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["version"] == "0.125.0"
    assert report["create"]["stop"] == "end_turn" and report["create"]["model"] == MODEL
    assert report["create"]["text"].endswith("You said: Hello") and report["create"]["input_tokens"] > 0
    tools = report["tools"]
    assert (tools["first_stop"], tools["tool"], tools["input"]) == ("tool_use", "get_weather", {"city": "Paris"})
    assert tools["thinking_blocks"] == 1 and decode_signature(tools["signature"]) is not None
    assert tools["second_stop"] == "end_turn" and "18C" in tools["second_text"]
    assert any(i["type"] == "reasoning" for i in upstream.requests[2]["input"])
    assert report["count_tokens"] > 0 and all(m.startswith("claude") for m in report["models"])
    assert report["model_get"] == report["models"][0]
    error = report["error"]
    assert (error["status"], error["type"]) == (400, "invalid_request_error") and error["request_id"] == error["header"]
    first = next(h for h in gateway.headers if "anthropic-version" in h)
    assert first["anthropic-version"] == "2023-06-01" and first["x-api-key"] == KEY and "authorization" not in first
