"""Through the app: upstream failures, transport failures and malformed requests become Anthropic errors (4xx/5xx
with the envelope and a request-id), never a 500 for bad input and never a stack trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.servers import free_port

BODY: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
AppFactory = Callable[[Settings], Any]


async def _client(app_factory: AppFactory, settings: Settings) -> httpx.AsyncClient:
    app = await app_factory(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)


def _assert_envelope(reply: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["error"]["message"] and "Traceback" not in reply.text
    assert reply.headers["request-id"].startswith("req_") and body["request_id"] == reply.headers["request-id"]
    return body


@pytest.fixture
async def no_retry_client(
    app_factory: AppFactory, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(app_factory, make_settings(max_retries=0)) as http:
        yield http


@pytest.mark.parametrize(
    ("status", "code", "client_status", "error_type"),
    [
        (400, "invalid_value", 400, "invalid_request_error"),
        (401, "invalid_api_key", 401, "authentication_error"),
        (403, None, 403, "permission_error"),
        (404, "model_not_found", 404, "not_found_error"),
        (409, None, 409, "conflict_error"),
        (413, None, 413, "request_too_large"),
        (422, None, 400, "invalid_request_error"),
        (429, "rate_limit_exceeded", 429, "rate_limit_error"),
        (500, "server_error", 500, "api_error"),
        (502, None, 500, "api_error"),
        (503, "server_is_overloaded", 529, "overloaded_error"),
        (504, None, 504, "timeout_error"),
        (529, None, 529, "overloaded_error"),
    ],
)
async def test_upstream_status_mapping(
    no_retry_client: httpx.AsyncClient,
    upstream: FakeUpstream,
    status: int,
    code: str | None,
    client_status: int,
    error_type: str,
) -> None:
    error = {"message": f"upstream {status} for sk-upstream-secret", "type": "x", "param": None, "code": code}
    upstream.script.push(Reply(status=status, json_body={"error": error}))
    reply = await no_retry_client.post("/v1/messages", json=BODY)
    _assert_envelope(reply, client_status, error_type)
    assert "sk-upstream-secret" not in reply.text or status != 401


async def test_rate_limit_headers(no_retry_client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    limited = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    upstream.script.push(
        Reply(status=429, json_body=limited, headers={"retry-after": "3"}),
        Reply(status=429, json_body=limited, headers={"retry-after-ms": "2500"}),
    )
    first = await no_retry_client.post("/v1/messages", json=BODY)
    _assert_envelope(first, 429, "rate_limit_error")
    assert first.headers["retry-after"] == "3"
    second = await no_retry_client.post("/v1/messages", json=BODY)
    assert second.headers["retry-after"] == "3"  # ceil(2.5 s)


async def test_insufficient_quota_says_do_not_retry(no_retry_client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    upstream.script.push(Reply(status=429, json_body=quota, headers={"retry-after": "3"}))
    reply = await no_retry_client.post("/v1/messages", json=BODY)
    _assert_envelope(reply, 429, "rate_limit_error")
    assert reply.headers["x-should-retry"] == "false" and "retry-after" not in reply.headers


async def test_context_length_exceeded_wording(no_retry_client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    message = "This model's maximum context length is 272000 tokens. However, your messages resulted in 290123 tokens."
    upstream.script.push(
        Reply(status=400, json_body={"error": {"message": message, "code": "context_length_exceeded"}})
    )
    reply = await no_retry_client.post("/v1/messages", json=BODY)
    body = _assert_envelope(reply, 400, "invalid_request_error")
    assert body["error"]["message"] == "prompt is too long: 290123 tokens > 272000 maximum"


async def test_upstream_failed_response_is_an_error(no_retry_client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    failed = {
        "id": "resp_1",
        "object": "response",
        "status": "failed",
        "output": [],
        "error": {"code": "server_error", "message": "boom"},
    }
    upstream.script.push(Reply(json_body=failed))
    _assert_envelope(await no_retry_client.post("/v1/messages", json=BODY), 500, "api_error")


async def test_upstream_invalid_json_is_a_bad_gateway_api_error(
    no_retry_client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(json_body=["not", "a", "response"]))
    _assert_envelope(await no_retry_client.post("/v1/messages", json=BODY), 502, "api_error")


async def test_connection_refused(app_factory: AppFactory, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(openai_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0, connect_timeout=2)
    async with await _client(app_factory, settings) as http:
        reply = await http.post("/v1/messages", json=BODY)
        body = _assert_envelope(reply, 529, "overloaded_error")
        assert "127.0.0.1" not in body["error"]["message"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unready"


async def test_upstream_timeout(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(hang=1.0, json_body={}))
    async with await _client(app_factory, make_settings(read_timeout=0.2, max_retries=0)) as http:
        reply = await http.post("/v1/messages", json=BODY)
    _assert_envelope(reply, 504, "timeout_error")


# ---- malformed requests: always the envelope, a 4xx, a precise message ------------------------------------------

INVALID: list[tuple[str, Any, str]] = [
    ("missing_model", {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ("missing_max_tokens", {"model": "claude-x", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ("missing_messages", {"model": "claude-x", "max_tokens": 5}, "messages"),
    ("empty_messages", {"model": "claude-x", "max_tokens": 5, "messages": []}, "messages"),
    ("max_tokens_string", {**BODY, "max_tokens": "5"}, "max_tokens"),
    ("max_tokens_negative", {**BODY, "max_tokens": -1}, "max_tokens"),
    ("messages_not_list", {**BODY, "messages": "hi"}, "messages"),
    ("bad_role", {**BODY, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ("content_number", {**BODY, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    (
        "unknown_block",
        {**BODY, "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]},
        "messages[0].content[0]",
    ),
    ("empty_content", {**BODY, "messages": [{"role": "user", "content": []}]}, "messages.0"),
    (
        "tool_result_without_tool_use",
        {
            **BODY,
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}
            ],
        },
        "toolu_x",
    ),
    (
        "tool_use_without_tool_result",
        {
            **BODY,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_y", "name": "t", "input": {}}]},
                {"role": "user", "content": "no result"},
            ],
        },
        "toolu_y",
    ),
    (
        "tool_use_input_not_object",
        {
            **BODY,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_z", "name": "t", "input": [1]}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_z"}]},
            ],
        },
        "input",
    ),
    (
        "thinking_in_user_turn",
        {**BODY, "messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]},
        "messages.0.content.0",
    ),
    (
        "image_file_source",
        {
            **BODY,
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}
            ],
        },
        "file",
    ),
    ("temperature_out_of_range", {**BODY, "temperature": 3}, "temperature"),
    (
        "server_tool",
        {**BODY, "tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
        "code_execution",
    ),
    ("tool_without_name", {**BODY, "tools": [{"input_schema": {"type": "object"}}]}, "name"),
    ("body_is_array", [BODY], "object"),
]


@pytest.mark.parametrize(("case", "body", "mentions"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_request(
    client: httpx.AsyncClient, upstream: FakeUpstream, case: str, body: Any, mentions: str
) -> None:
    reply = await client.post("/v1/messages", json=body)
    envelope = _assert_envelope(reply, 400, "invalid_request_error")
    assert mentions in envelope["error"]["message"], envelope
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"model": "claude-x", "max_tokens": 5, "messages": [', {}),
        (b"not json at all", {}),
        (b"", {}),
        (b"   ", {}),
        (b'\xff\xfe{"a"', {}),
        (b'{"model": "\xff"}', {}),
        (b"[" * 100_000 + b"]" * 100_000, {}),
    ],
    ids=["truncated", "garbage", "empty", "blank", "binary", "invalid_utf8", "deep_nesting"],
)
async def test_unparsable_body(client: httpx.AsyncClient, content: bytes, headers: dict[str, str]) -> None:
    reply = await client.post("/v1/messages", content=content, headers={"content-type": "application/json"})
    _assert_envelope(reply, 400, "invalid_request_error")


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/v1/messages", content=b"model=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    body = _assert_envelope(reply, 400, "invalid_request_error")
    assert "content-type" in body["error"]["message"]


async def test_oversized_body_is_413(app_factory: AppFactory, make_settings: Callable[..., Settings]) -> None:
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
    async with await _client(app_factory, make_settings(max_body_bytes=2048)) as http:
        _assert_envelope(await http.post("/v1/messages", json=big), 413, "request_too_large")
        _assert_envelope(await http.post("/v1/messages/count_tokens", json=big), 413, "request_too_large")

        async def chunks() -> Any:  # no content-length: the limit applies while reading
            for _ in range(10):
                yield b"x" * 1024

        _assert_envelope(await http.post("/v1/messages", content=chunks()), 413, "request_too_large")
        small = await http.post("/v1/messages", json=BODY)
        assert small.status_code == 200


async def test_unknown_fields_and_betas_are_ignored(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body = {
        **BODY,
        "future_field": {"x": 1},
        "container": "c_1",
        "inference_geo": "us",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "future": 1}], "extra": True}],
    }
    reply = await client.post(
        "/v1/messages", json=body, headers={"anthropic-beta": "made-up-2099-01-01,context-1m-2025-08-07"}
    )
    assert reply.status_code == 200, reply.text
    assert "future_field" not in upstream.requests[-1]


@pytest.mark.parametrize(
    "path",
    ["/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens", "/v1/messages/count_tokens?beta=true"],
)
async def test_beta_query_on_both_routes(client: httpx.AsyncClient, path: str) -> None:
    reply = await client.post(path, json=BODY)
    assert reply.status_code == 200, reply.text
    assert reply.headers["request-id"].startswith("req_")


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    _assert_envelope(await client.get("/v1/nothing"), 404, "not_found_error")
    reply = await client.get("/v1/messages")
    assert reply.status_code == 405 and reply.json()["type"] == "error"


async def test_client_request_id_is_echoed(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    reply = await client.post("/v1/messages", json=BODY, headers={"request-id": "req_client_chosen_1234"})
    assert reply.headers["request-id"] == "req_client_chosen_1234"
    assert upstream.script.received[-1].headers["x-client-request-id"] == "req_client_chosen_1234"
