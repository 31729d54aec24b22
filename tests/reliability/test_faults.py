"""The fault matrix: every upstream failure ends in a typed Anthropic error, quickly, with nothing leaked.

Each test asserts what the client receives, how many upstream attempts were made (retries only before the
first byte), and that no upstream connection or task is left behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.reliability.faults import (
    RETRIED,
    SECRETS,
    RawUpstream,
    blackhole,
    raw_upstream,
    read_request,
    reset,
    response_head,
)
from tests.servers import free_port

AppFactory = Callable[[Settings], Any]


def assert_error(reply: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """An Anthropic error envelope with the request id, and no secret in it."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == reply.headers["request-id"]
    for secret in SECRETS:
        assert secret not in reply.text and secret not in str(reply.headers)
    return dict(body)


# --- transport faults ---------------------------------------------------------------------------------------------


async def test_connection_refused_is_retried_then_529(open_gateway: Any) -> None:
    gateway = await open_gateway(openai_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retry_wait=0.1)
    started = time.monotonic()
    reply = await gateway.post()
    assert_error(reply, 529, "overloaded_error")
    assert time.monotonic() - started < 2
    await gateway.released()


async def test_connect_timeout_gives_504_within_the_connect_timeout(open_gateway: Any) -> None:
    async with blackhole() as port:
        gateway = await open_gateway(
            openai_base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.3, retry_budget=0.5, max_retry_wait=0.1
        )
        started = time.monotonic()
        reply = await gateway.post()
        elapsed = time.monotonic() - started
    assert_error(reply, 504, "timeout_error")
    assert 0.3 <= elapsed < 1.5
    await gateway.released()


async def test_silent_upstream_times_out_with_504_and_is_not_retried(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(Reply(hang=3.0))
    gateway = await open_gateway(read_timeout=0.4)
    started = time.monotonic()
    reply = await gateway.post()
    assert_error(reply, 504, "timeout_error")
    assert time.monotonic() - started < 1.5
    assert len(upstream.requests) == 1  # the upstream may be generating: never a second billed call
    await gateway.released()


async def _reset_after(upstream: RawUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(response_head(content_type=b"application/json", extra=b"content-length: 500\r\n") + b'{"id":')
    await writer.drain()
    await asyncio.sleep(0.05)
    reset(writer)


async def test_connection_reset_mid_body_is_an_api_error_never_retried(open_gateway: Any) -> None:
    holder: list[RawUpstream] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _reset_after(holder[0], reader, writer)

    async with raw_upstream(handler) as upstream:
        holder.append(upstream)
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        reply = await gateway.post()
        assert_error(reply, 500, "api_error")
        assert upstream.opened == 1
        await gateway.released()


async def test_invalid_json_from_upstream_is_a_bad_gateway_api_error(open_gateway: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"id": "resp_1", "output": [tru'
        writer.write(response_head(content_type=b"application/json", extra=b"content-length: %d\r\n" % len(body)))
        writer.write(body)
        writer.close()
        await writer.wait_closed()

    async with raw_upstream(handler) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        assert_error(await gateway.post(), 502, "api_error")
        assert upstream.opened == 1
        await gateway.released()


# --- HTTP statuses ------------------------------------------------------------------------------------------------


def failure(status: int, code: str = "server_error", **headers: str) -> Reply:
    return Reply(status=status, json_body={"error": {"message": f"upstream {status}", "code": code}}, headers=headers)


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    RETRIED,
)
async def test_retryable_status_is_retried_then_passed_on(
    open_gateway: Any, upstream: FakeUpstream, status: int, client_status: int, error_type: str
) -> None:
    upstream.script.push(*[failure(status)] * 3)
    gateway = await open_gateway(max_retry_wait=0.05)
    assert_error(await gateway.post(), client_status, error_type)
    assert len(upstream.requests) == 3  # the first attempt and two retries
    await gateway.released()


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
async def test_a_retry_can_succeed(open_gateway: Any, upstream: FakeUpstream, status: int) -> None:
    upstream.script.push(failure(status))
    gateway = await open_gateway(max_retry_wait=0.05)
    reply = await gateway.post()
    assert reply.status_code == 200 and reply.json()["type"] == "message"
    assert len(upstream.requests) == 2
    await gateway.released()


@pytest.mark.parametrize(
    "headers", [{"retry-after": "1"}, {"retry-after-ms": "400"}], ids=["retry-after", "retry-after-ms"]
)
async def test_short_retry_after_is_waited_out(
    open_gateway: Any, upstream: FakeUpstream, headers: dict[str, str]
) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **headers))
    gateway = await open_gateway(max_retry_wait=1.0)
    started = time.monotonic()
    reply = await gateway.post()
    assert reply.status_code == 200
    assert time.monotonic() - started >= 0.39
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(("headers", "expected"), [({"retry-after": "30"}, "30"), ({"retry-after-ms": "12500"}, "13")])
async def test_long_retry_after_goes_to_the_client_at_once(
    open_gateway: Any, upstream: FakeUpstream, headers: dict[str, str], expected: str
) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **headers))
    gateway = await open_gateway()
    started = time.monotonic()
    reply = await gateway.post()
    assert time.monotonic() - started < 1
    assert_error(reply, 429, "rate_limit_error")
    assert reply.headers["retry-after"] == expected
    assert len(upstream.requests) == 1
    await gateway.released()


async def test_529_with_long_retry_after_keeps_it(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(failure(529, "server_is_overloaded", **{"retry-after": "20"}))
    gateway = await open_gateway()
    reply = await gateway.post()
    assert_error(reply, 529, "overloaded_error")
    assert reply.headers["retry-after"] == "20"
    assert len(upstream.requests) == 1


async def test_upstream_x_should_retry_false_is_obeyed(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(failure(503, **{"x-should-retry": "false"}))
    gateway = await open_gateway()
    assert_error(await gateway.post(), 529, "overloaded_error")
    assert len(upstream.requests) == 1


async def test_quota_exhaustion_tells_the_client_not_to_retry(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(*[failure(429, "insufficient_quota")] * 3)
    gateway = await open_gateway(max_retry_wait=0.05)
    reply = await gateway.post()
    assert_error(reply, 429, "rate_limit_error")
    assert reply.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_never_retried(open_gateway: Any, upstream: FakeUpstream, status: int) -> None:
    upstream.script.push(failure(status, "invalid_value"))
    gateway = await open_gateway()
    reply = await gateway.post()
    assert 400 <= reply.status_code < 500
    assert reply.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 1
    await gateway.released()


async def test_invalid_function_call_arguments_are_an_error_not_a_tool_call(
    open_gateway: Any, upstream: FakeUpstream
) -> None:
    response = {
        "id": "resp_bad",
        "object": "response",
        "created_at": 1,
        "model": "gpt-5",
        "status": "completed",
        "output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Bash", "arguments": '{"command": "ls'}
        ],
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
    }
    upstream.script.push(Reply(json_body=response))
    gateway = await open_gateway()
    assert_error(await gateway.post(), 500, "api_error")
    await gateway.released()


def test_error_bodies_are_json_serialisable_examples() -> None:
    """The helper itself rejects a non-envelope (guards the assertions above)."""
    fake = httpx.Response(500, json={"detail": "x"}, headers={"request-id": "req_1"})
    with pytest.raises((AssertionError, KeyError)):
        assert_error(fake, 500, "api_error")
    assert json.loads(b'{"a": 1}') == {"a": 1}
