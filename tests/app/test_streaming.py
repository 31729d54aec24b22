"""`stream: true` through the app: the fake upstream over HTTP, scripted SSE, pings, errors, disconnects."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.servers import serving
from tests.streamkit import check_grammar, chunked, fold, parse_sse

JSON = dict[str, Any]
USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 8},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 4},
}
TOOL = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def request(**extra: Any) -> JSON:
    body: JSON = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    body.update(extra)
    return body


def response(*output: JSON, status: str = "completed") -> JSON:
    return {
        "id": "resp_stream01",
        "object": "response",
        "model": "gpt-5",
        "status": status,
        "output": list(output),
        "usage": USAGE,
        "error": None,
        "incomplete_details": None,
    }


def text_item(text: str) -> JSON:
    return {
        "id": "msg_s1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


CALL = {
    "id": "fc_s1",
    "type": "function_call",
    "status": "completed",
    "call_id": "call_s1",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
}
REASONING = {
    "id": "rs_s1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Need the weather."}],
    "encrypted_content": "c2ltOnJzX3Mx",
}


def sse_reply(resp: JSON, *, pieces: int = 7, delay: float = 0.0, chunk: int = 5) -> Reply:
    data = encode_sse(events_for(resp, chunk=chunk))
    step = max(1, len(data) // pieces)
    return Reply(chunks=chunked(data, range(step, len(data), step)), delay=delay)


async def test_stream_folds_to_the_non_streaming_message(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    resp = response(REASONING, text_item("Let me check \u00e9\U0001f600."), CALL)
    upstream.script.push(sse_reply(resp, pieces=13), Reply(json_body=resp))
    body = request(tools=[TOOL], thinking={"type": "enabled", "budget_tokens": 2048})
    streamed = await client.post("/v1/messages", json=body)
    plain = await client.post("/v1/messages", json={**body, "stream": False})
    assert streamed.status_code == 200 and plain.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["cache-control"] == "no-cache" and streamed.headers["request-id"].startswith("req_")
    events = parse_sse(streamed.content)
    check_grammar(events)
    message = fold(events)
    assert message["content"] == plain.json()["content"]
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    for key in ("id", "model", "stop_reason", "stop_sequence", "usage"):
        assert message[key] == plain.json()[key], key
    sent = upstream.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_obfuscation": False}
    assert upstream.script.received[0].headers["x-client-request-id"] == streamed.headers["request-id"]


async def test_upstream_http_error_before_the_first_byte_is_a_json_error(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    error = {"error": {"message": "Invalid 'input[0]'", "type": "invalid_request_error", "code": None}}
    upstream.script.push(Reply(status=400, json_body=error))
    reply = await client.post("/v1/messages", json=request())
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == {"type": "invalid_request_error", "message": "Invalid 'input[0]'"}


async def test_connect_error_is_a_json_error(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    app = await app_factory(make_settings(openai_base_url="http://127.0.0.1:9/v1", max_retries=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as http:
        reply = await http.post("/v1/messages", json=request())
    assert reply.status_code == 529 and reply.json()["error"]["type"] == "overloaded_error"


async def test_pings_while_the_upstream_is_silent(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    app = await app_factory(make_settings(ping_interval=0.05))
    upstream.script.push(sse_reply(response(text_item("slow answer")), pieces=3, delay=0.3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as http:
        reply = await http.post("/v1/messages", json=request())
    events = parse_sse(reply.content)
    assert events[0][0] == "message_start"  # the upstream's silence before `response.created` gets no ping
    assert events.count(("ping", {"type": "ping"})) >= 3
    assert b'data: {"type": "ping"}' in reply.content
    without_pings = [e for e in events if e[0] != "ping"]
    check_grammar(without_pings)
    assert fold(without_pings)["content"] == [{"type": "text", "text": "slow answer"}]


async def test_upstream_cut_mid_stream_ends_with_an_error_event(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    data = encode_sse(events_for(response(text_item("this answer never finishes")), chunk=4))
    upstream.script.push(Reply(chunks=[data[: len(data) // 2]]))
    events = parse_sse((await client.post("/v1/messages", json=request())).content)
    check_grammar(events)
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [n for n, _ in events]


async def test_failed_response_is_an_error_event_with_the_mapped_type(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    failed = {**response(), "status": "failed", "error": {"code": "server_is_overloaded", "message": "Busy"}}
    upstream.script.push(Reply(chunks=[encode_sse(events_for(failed))]))
    events = parse_sse((await client.post("/v1/messages", json=request())).content)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}})


async def test_stop_sequence_closes_the_upstream_early(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    data = encode_sse(events_for(response(text_item("one two STOP three four five six")), chunk=3))
    pieces = chunked(data, range(200, len(data), 200))
    upstream.script.push(Reply(chunks=pieces, delay=0.02))
    started = time.monotonic()
    reply = await client.post("/v1/messages", json=request(stop_sequences=["STOP"]))
    events = parse_sse(reply.content)
    check_grammar(events)
    message = fold(events)
    assert message["content"] == [{"type": "text", "text": "one two "}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "STOP")
    assert time.monotonic() - started < 0.02 * len(pieces)  # did not wait for the rest of the upstream


def _slow_upstream(cancelled: threading.Event, sent: threading.Event) -> Starlette:
    """An upstream that streams one event and then stays silent for a long time, noting when it is cut off."""
    head = encode_sse(events_for(response(text_item("never")))[:1])

    async def responses(_: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield head
                sent.set()
                await asyncio.sleep(30)
                yield b""
            finally:
                cancelled.set()

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"])])


async def test_client_disconnect_cancels_the_upstream_request() -> None:
    cancelled, sent = threading.Event(), threading.Event()
    with serving(_slow_upstream(cancelled, sent)) as up:
        settings = Settings(openai_api_key="sk-x", openai_base_url=up.url + "/v1", ping_interval=0.05)
        with serving(create_app(settings)) as gateway:
            async with (
                httpx.AsyncClient(timeout=10) as http,
                http.stream("POST", gateway.url + "/v1/messages", json=request()) as reply,
            ):
                assert reply.status_code == 200
                async for chunk in reply.aiter_bytes():
                    if b"message_start" in chunk:
                        break
            assert sent.is_set()
            released = await asyncio.to_thread(cancelled.wait, 5)
            assert released, "the upstream request was not cancelled after the client left"


async def test_max_tokens_zero_stream_is_a_prewarm_without_upstream_call(
    client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    reply = await client.post("/v1/messages", json=request(max_tokens=0))
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(reply.content)
    check_grammar(events)
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    assert upstream.requests == []
