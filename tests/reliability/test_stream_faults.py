"""The fault matrix for `stream: true`: before the first byte a JSON error, after it an `event: error` and the end.

Never a made-up success: a stream that fails never carries `message_stop` after its error, nor a `stop_reason`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.reliability.faults import (
    MESSAGE,
    RETRIED,
    SECRETS,
    RawUpstream,
    assert_released,
    blackhole,
    ok_response,
    raw_upstream,
    read_request,
    reset,
    response_head,
    start_call,
    wait_peer_close,
    wait_until,
)
from tests.reliability.test_faults import assert_error, failure
from tests.servers import free_port

AppFactory = Callable[[Settings], Any]
STREAM = {**MESSAGE, "stream": True}
TEXT = "The quick brown fox jumps over the lazy dog, twice over."


def upstream_events(response: dict[str, Any] | None = None, *, chunk: int = 8) -> list[bytes]:
    """The Responses SSE stream of `response`, one encoded event per item (text deltas of `chunk` characters)."""
    return [encode_sse([event]) for event in events_for(response or ok_response(TEXT), chunk=chunk)]


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    frames = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            frames.append((lines["event"], json.loads(lines["data"])))
    return frames


def assert_failed_stream(reply: httpx.Response, error_type: str) -> list[tuple[str, dict[str, Any]]]:
    """A 200 SSE stream that ended with exactly one `error` event and nothing after it.

    It opens with `message_start`, or is the error alone when the fault came in the upstream's first read.
    """
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(reply.text)
    names = [name for name, _ in frames]
    assert names[0] == "message_start" or names == ["error"], names
    assert names[-1] == "error" and names.count("error") == 1, names
    assert "message_stop" not in names
    assert all("stop_reason" not in data.get("delta", {}) for name, data in frames if name == "message_delta")
    error = frames[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == error_type and error["error"]["message"]
    for secret in SECRETS:
        assert secret not in reply.text
    return frames


def text_of(frames: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(d["delta"].get("text", "") for n, d in frames if n == "content_block_delta")


def sse_server(chunks: Sequence[bytes | float], then: str) -> Callable[..., Any]:
    """A raw upstream answering 200 SSE (read-until-close framing; a number among the chunks is a pause of that many
    seconds), then `reset`, `close` or `hang`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(extra=b"connection: close\r\n"))
        for chunk in chunks:
            if isinstance(chunk, float):
                await asyncio.sleep(chunk)
                continue
            writer.write(chunk)
            await writer.drain()
        if then == "reset":
            await asyncio.sleep(0.05)
            reset(writer)
        elif then == "close":
            writer.close()
            await writer.wait_closed()
        else:  # hang: silent until the gateway gives up and closes
            while await reader.read(65536):
                pass

    return handler


# --- before the first byte: ordinary JSON errors ------------------------------------------------------------------


async def test_stream_connection_refused_is_a_json_529(open_gateway: Any) -> None:
    gateway = await open_gateway(openai_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retry_wait=0.1)
    assert_error(await gateway.post(STREAM), 529, "overloaded_error")
    await gateway.released()


async def test_stream_connect_timeout_is_a_json_504(open_gateway: Any) -> None:
    async with blackhole() as port:
        gateway = await open_gateway(
            openai_base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.3, retry_budget=0.5
        )
        started = time.monotonic()
        reply = await gateway.post(STREAM)
        assert time.monotonic() - started < 1.5
    assert_error(reply, 504, "timeout_error")
    await gateway.released()


async def test_stream_silent_before_headers_is_a_json_504(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(Reply(hang=3.0))
    gateway = await open_gateway(read_timeout=0.4)
    started = time.monotonic()
    assert_error(await gateway.post(STREAM), 504, "timeout_error")
    assert time.monotonic() - started < 1.5
    assert len(upstream.requests) == 1
    await gateway.released()


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    RETRIED,
)
async def test_stream_retryable_status_is_retried_then_a_json_error(
    open_gateway: Any, upstream: FakeUpstream, status: int, client_status: int, error_type: str
) -> None:
    upstream.script.push(*[failure(status)] * 3)
    gateway = await open_gateway(max_retry_wait=0.05)
    assert_error(await gateway.post(STREAM), client_status, error_type)
    assert len(upstream.requests) == 3
    await gateway.released()


async def test_stream_retry_before_headers_can_succeed(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(failure(529, "server_is_overloaded"), failure(429, **{"retry-after-ms": "100"}))
    gateway = await open_gateway(max_retry_wait=0.5)
    reply = await gateway.post(STREAM)
    frames = parse_sse(reply.text)
    assert [n for n, _ in frames][-1] == "message_stop"
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(("headers", "expected"), [({"retry-after": "40"}, "40"), ({"retry-after-ms": "9000"}, "9")])
async def test_stream_long_retry_after_is_passed_on(
    open_gateway: Any, upstream: FakeUpstream, headers: dict[str, str], expected: str
) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **headers))
    gateway = await open_gateway()
    reply = await gateway.post(STREAM)
    assert_error(reply, 429, "rate_limit_error")
    assert reply.headers["retry-after"] == expected
    assert len(upstream.requests) == 1


# --- after the first byte: event: error and the end ---------------------------------------------------------------


async def test_reset_mid_stream_is_an_error_event_and_never_retried(open_gateway: Any) -> None:
    async with raw_upstream(sse_server(upstream_events()[:6], "reset")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        frames = assert_failed_stream(await gateway.post(STREAM), "api_error")
        assert text_of(frames)  # the part that arrived was relayed, then the error
        assert upstream.opened == 1
        await gateway.released()


async def test_stream_ending_without_a_terminal_event_is_an_error(open_gateway: Any) -> None:
    async with raw_upstream(sse_server(upstream_events()[:-1], "close")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        assert_failed_stream(await gateway.post(STREAM), "api_error")
        assert upstream.opened == 1
        await gateway.released()


async def test_malformed_sse_data_is_an_error_event(open_gateway: Any) -> None:
    chunks = [*upstream_events()[:5], b'event: response.output_text.delta\ndata: {"type": "response.outp\n\n']
    async with raw_upstream(sse_server([*chunks, *upstream_events()[5:]], "close")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        assert_failed_stream(await gateway.post(STREAM), "api_error")
        await gateway.released()


async def test_silence_after_headers_past_the_read_timeout_is_a_timeout_error_event(open_gateway: Any) -> None:
    async with raw_upstream(sse_server(upstream_events()[:5], "hang")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, read_timeout=0.5, ping_interval=0.2)
        started = time.monotonic()
        frames = assert_failed_stream(await gateway.post(STREAM), "timeout_error")
        assert time.monotonic() - started < 2
        assert "ping" in [n for n, _ in frames]
        await gateway.released()


async def test_a_stall_longer_than_the_ping_interval_keeps_pings_flowing(open_gateway: Any) -> None:
    events = upstream_events()
    async with raw_upstream(sse_server([*events[:3], 0.6, *events[3:]], "close")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, ping_interval=0.1, read_timeout=5)
        reply = await gateway.post(STREAM)
        frames = parse_sse(reply.text)
        names = [n for n, _ in frames]
        assert names.count("ping") >= 3
        assert names[-1] == "message_stop" and "error" not in names
        assert text_of(frames) == TEXT
        await gateway.released()


async def test_invalid_tool_arguments_in_a_stream_are_an_error_event(open_gateway: Any) -> None:
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Bash", "arguments": '{"command": "l'}
    events = upstream_events(ok_response(output=[call]))
    async with raw_upstream(sse_server(events, "close")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        frames = assert_failed_stream(await gateway.post(STREAM), "api_error")
        assert all(d.get("delta", {}).get("stop_reason") != "tool_use" for _, d in frames)
        await gateway.released()


async def test_response_failed_mid_stream_is_an_error_event(open_gateway: Any) -> None:
    events = upstream_events()[:6]
    error = {"code": "server_error", "message": "boom"}
    failed = {
        "type": "response.failed",
        "sequence_number": 99,
        "response": {**ok_response(), "status": "failed", "error": error},
    }
    async with raw_upstream(sse_server([*events, encode_sse([failed])], "close")) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        assert_failed_stream(await gateway.post(STREAM), "api_error")
        assert upstream.opened == 1
        await gateway.released()


# --- client disconnect mid-stream ---------------------------------------------------------------------------------


async def test_disconnect_mid_stream_closes_the_upstream_at_once(
    app_factory: AppFactory, make_settings: Callable[..., Settings]
) -> None:
    holder: list[RawUpstream] = []

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(extra=b"connection: close\r\n") + b"".join(upstream_events()[:5]))
        await writer.drain()
        await wait_peer_close(holder[0], reader)

    async with raw_upstream(endless) as upstream:
        holder.append(upstream)
        app = await app_factory(make_settings(openai_base_url=upstream.base_url, ping_interval=0.05))
        baseline = asyncio.all_tasks()
        call, task = start_call(app, json.dumps(STREAM).encode())
        await wait_until(lambda: b"content_block_delta" in call.body)
        gone_at = time.monotonic()
        call.gone.set()
        await asyncio.wait_for(task, 0.5)
        await wait_until(lambda: bool(upstream.peer_closed_at), 0.5)
        assert upstream.peer_closed_at[0] - gone_at < 0.3
        assert b"message_stop" not in call.body
        await assert_released(app, baseline)
        assert app.state.gateway.lifecycle.inflight == 0
