"""The official anthropic SDK against the gateway on 127.0.0.1: streaming accumulates the non-streaming message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.servers import ThreadedServer
from tests.streamkit import chunked, fold

JSON = dict[str, Any]
RESPONSE: JSON = {
    "id": "resp_sdk0001",
    "object": "response",
    "model": "gpt-5",
    "status": "completed",
    "output": [
        {
            "id": "rs_sdk1",
            "type": "reasoning",
            "summary": [
                {"type": "summary_text", "text": "Weather lookup."},
                {"type": "summary_text", "text": "Use the tool."},
            ],
            "encrypted_content": "c2ltOnJzX3NkazE=",
        },
        {
            "id": "msg_sdk1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking Paris \u2600\ufe0f for you.", "annotations": []}],
        },
        {
            "id": "fc_sdk1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_sdk1",
            "name": "get_weather",
            "arguments": '{"city":"Paris","days":[1,2]}',
        },
        {
            "id": "fc_sdk2",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_sdk2",
            "name": "get_time",
            "arguments": '{"tz":"Europe/Paris"}',
        },
    ],
    "usage": {
        "input_tokens": 900,
        "input_tokens_details": {"cached_tokens": 512},
        "output_tokens": 77,
        "output_tokens_details": {"reasoning_tokens": 30},
    },
    "error": None,
    "incomplete_details": None,
}
TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}},
    {"name": "get_time", "description": "Time", "input_schema": {"type": "object"}},
]
KWARGS: dict[str, Any] = {
    "model": "claude-sonnet-5",
    "max_tokens": 4096,
    "tools": TOOLS,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "messages": [{"role": "user", "content": "What's the weather and time in Paris?"}],
}


def _stream_reply() -> Reply:
    data = encode_sse(events_for(RESPONSE, chunk=3))
    return Reply(chunks=chunked(data, range(97, len(data), 97)))


@pytest.fixture
def sdk(gateway_server: ThreadedServer) -> Iterator[anthropic.Anthropic]:
    """Closed at teardown: an SDK client left to the garbage collector leaks its keep-alive socket."""
    with anthropic.Anthropic(
        base_url=gateway_server.url, api_key="sk-ant-test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def _comparable(message: JSON) -> JSON:
    keys = ("id", "type", "role", "model", "content", "stop_reason", "stop_sequence")
    usage = {k: message["usage"][k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")}
    return {**{k: message[k] for k in keys}, "usage": usage}


def test_sdk_stream_and_create_stream_accumulate_the_non_streaming_message(
    sdk: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(json_body=RESPONSE), _stream_reply(), _stream_reply())
    plain = sdk.messages.create(**KWARGS).to_dict()

    with sdk.messages.stream(**KWARGS) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message().to_dict()
    raw = [(event.type, event.to_dict()) for event in sdk.messages.create(**KWARGS, stream=True)]

    expected = _comparable(plain)
    assert [b["type"] for b in expected["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert expected["stop_reason"] == "tool_use" and expected["usage"]["input_tokens"] == 900 - 512
    assert _comparable(final) == expected
    assert _comparable(fold(raw)) == expected
    assert "".join(texts) == "Checking Paris \u2600\ufe0f for you."
    assert all(r.body["stream"] is True for r in upstream.script.received[1:])


def test_sdk_raises_the_mapped_error_for_an_in_band_failure(sdk: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    failed = {**RESPONSE, "status": "failed", "output": [], "error": {"code": "rate_limit_exceeded", "message": "Slow"}}
    upstream.script.push(Reply(chunks=[encode_sse(events_for(failed))]))
    with pytest.raises(anthropic.APIStatusError) as raised, sdk.messages.stream(**KWARGS) as stream:
        stream.get_final_message()
    assert raised.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow"}}
    assert (raised.value.request_id or "").startswith("req_")
