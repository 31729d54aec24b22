"""Through the app: a 2xx upstream answer that cannot be translated faithfully is a typed 502-class `api_error`,
the same (type, message, log line) streamed or not; odd but usable answers (negative usage, unusable tool ids) are
repaired before they reach the client, the metrics or the next turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import LogCapture, capture_logs, scrape
from tests.streamkit import check_grammar, fold, parse_sse

__all__ = ["capture_logs"]

JSON = dict[str, Any]
AppFactory = Callable[[Settings], Any]
BODY: JSON = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
TEXT = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi."}]}
USAGE = {"input_tokens": 30, "output_tokens": 5}


def _response(output: list[Any], **extra: Any) -> JSON:
    return {"id": "resp_fault1", "object": "response", "status": "completed", "output": output, "usage": USAGE} | extra


def _call(call_id: Any = "call_1", **extra: Any) -> JSON:
    item = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": call_id,
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    } | extra
    return {k: v for k, v in item.items() if v is not None}


def _stream_of(response: JSON) -> bytes:
    """The answer streamed; an item `events_for` cannot derive (not an object) is announced as it is."""
    if all(isinstance(i, dict) for i in response["output"]):
        return encode_sse(events_for(response))
    created = {"type": "response.created", "response": {"id": response["id"], "status": "in_progress", "output": []}}
    added = {"type": "response.output_item.added", "output_index": 0, "item": response["output"][0]}
    return encode_sse([created, added])


FAULTY = {
    "item not an object": (_response([42]), "The upstream sent an invalid output item: Expected `object`, got `int`"),
    "item a list": (
        _response([["message"]]),
        "The upstream sent an invalid output item: Expected `object`, got `array`",
    ),
    "call without call_id": (
        _response([_call(call_id=None)]),
        "The upstream sent an invalid output item: Object missing required field `call_id`",
    ),
    "call without name": (
        _response([_call(name=None)]),
        "The upstream sent an invalid output item: Object missing required field `name`",
    ),
    "call with empty name": (_response([_call(name="")]), "The upstream sent a function call without a name"),
    "status in_progress": (
        _response([TEXT], status="in_progress"),
        "The upstream answered with an unfinished response (status 'in_progress')",
    ),
    "status queued": (
        _response([], status="queued"),
        "The upstream answered with an unfinished response (status 'queued')",
    ),
    "status missing": (
        {k: v for k, v in _response([TEXT]).items() if k != "status"},
        "The upstream answered with an unfinished response (no known status)",
    ),
}


@pytest.fixture
async def gateway(
    app_factory: AppFactory, make_settings: Callable[..., Settings], capture_logs: Callable[[Settings], LogCapture]
) -> Any:
    settings = make_settings()
    logs = capture_logs(settings)
    app = await app_factory(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        yield http, logs


def _rejections(logs: LogCapture) -> list[str]:
    return [r["reason"] for r in logs.records() if r["event"] == "upstream answer rejected"]


def _assert_no_bug_logged(logs: LogCapture) -> None:
    assert not [r for r in logs.records() if r["event"] == "unhandled exception"]
    assert [r["status"] for r in logs.access()]  # the access line is never lost


@pytest.mark.parametrize("case", list(FAULTY))
async def test_untranslatable_answer_is_the_same_typed_502_streamed_or_not(
    gateway: Any, upstream: FakeUpstream, case: str
) -> None:
    http, logs = gateway
    response, message = FAULTY[case]
    upstream.script.push(Reply(json_body=response), Reply(chunks=[_stream_of(response)]))

    plain = await http.post("/v1/messages", json=BODY)
    assert plain.status_code == 502, plain.text
    assert plain.json()["error"] == {"type": "api_error", "message": message}

    streamed = await http.post("/v1/messages", json={**BODY, "stream": True})
    events = parse_sse(streamed.content)
    check_grammar(events)
    assert streamed.status_code == 200 and events[-1] == ("error", {"type": "error", "error": plain.json()["error"]})

    assert _rejections(logs) == [message, message]
    _assert_no_bug_logged(logs)
    access = logs.access()
    assert [(r["status"], r["error_type"]) for r in access] == [(502, "api_error"), (200, "api_error")]


async def test_an_invalid_json_answer_is_a_502_and_logged(gateway: Any, upstream: FakeUpstream) -> None:
    http, logs = gateway
    upstream.script.push(Reply(json_body=["not", "a", "response"]))
    reply = await http.post("/v1/messages", json=BODY)
    assert reply.status_code == 502 and reply.json()["error"]["type"] == "api_error"
    assert _rejections(logs) == ["The upstream answer is not a valid Responses API response"]
    _assert_no_bug_logged(logs)


@pytest.mark.parametrize("stream", [False, True])
async def test_negative_usage_never_reaches_the_client_or_the_metrics(
    gateway: Any, upstream: FakeUpstream, stream: bool
) -> None:
    http, logs = gateway
    usage = {
        "input_tokens": -40,
        "input_tokens_details": {"cached_tokens": -8, "cache_write_tokens": -2},
        "output_tokens": -12,
        "output_tokens_details": {"reasoning_tokens": -4},
    }
    response = _response([TEXT], usage=usage)
    upstream.script.push(Reply(chunks=[encode_sse(events_for(response))]) if stream else Reply(json_body=response))
    reply = await http.post("/v1/messages", json={**BODY, "stream": stream})
    assert reply.status_code == 200, reply.text
    message = fold(parse_sse(reply.content)) if stream else reply.json()
    assert message["content"] == [{"type": "text", "text": "Hi."}]
    counts = [v for k, v in message["usage"].items() if isinstance(v, int)]
    assert counts and min(counts) == 0 and message["usage"]["output_tokens_details"] == {"thinking_tokens": 0}
    metrics = scrape((await http.get("/metrics")).text)
    assert min(metrics.values()) >= 0
    (line,) = [r for r in logs.access() if r["route"] == "/v1/messages"]
    assert line["status"] == 200 and line["input_tokens"] == 0 and line["output_tokens"] == 0
    _assert_no_bug_logged(logs)


@pytest.mark.parametrize("stream", [False, True])
async def test_unusable_tool_ids_are_minted_and_map_back_on_the_next_turn(
    gateway: Any, upstream: FakeUpstream, stream: bool
) -> None:
    http, _ = gateway
    calls = [_call(""), _call("call_dup"), _call("call_dup"), _call("call with spaces")]
    for n, call in enumerate(calls):
        call["id"] = f"fc_{n}"
    response = _response(calls)
    upstream.script.push(Reply(chunks=[encode_sse(events_for(response))]) if stream else Reply(json_body=response))
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    first = await http.post("/v1/messages", json={**BODY, "stream": stream, "tools": tools})
    message = fold(parse_sse(first.content)) if stream else first.json()
    ids = [b["id"] for b in message["content"]]
    assert len(set(ids)) == 4 and ids[1] == "call_dup" and all(i.startswith("toolu_") for i in ids[::2] + ids[3:])

    # The next turn: the client answers every tool_use by its id; the upstream sees matching pairs.
    upstream.script.push(Reply(json_body=_response([TEXT])))
    results = [{"type": "tool_result", "tool_use_id": i, "content": "18C"} for i in ids]
    messages = [
        *BODY["messages"],
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": results},
    ]
    second = await http.post("/v1/messages", json={**BODY, "tools": tools, "messages": messages})
    assert second.status_code == 200, second.text
    sent = upstream.requests[-1]["input"]
    calls_sent = [i["call_id"] for i in sent if i.get("type") == "function_call"]
    outputs_sent = [i["call_id"] for i in sent if i.get("type") == "function_call_output"]
    assert calls_sent == outputs_sent == ids
    assert json.dumps(sent).count('"call_id": ""') == 0


async def test_a_negative_upstream_token_count_falls_back_to_the_estimate(gateway: Any, upstream: FakeUpstream) -> None:
    http, logs = gateway
    upstream.script.push(Reply(json_body={"object": "response.input_tokens", "input_tokens": -4242}))
    count = {k: v for k, v in BODY.items() if k != "max_tokens"}
    reply = await http.post("/v1/messages/count_tokens", json=count)
    assert reply.status_code == 200, reply.text
    assert reply.json()["input_tokens"] > 0
    (line,) = logs.access()
    assert line["token_count_exact"] is False
