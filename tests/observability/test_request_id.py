"""One correlation id end to end: response header, error body, upstream request header, every log record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import LogCapture, canary_reply, leaks

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _assert_one_id(logs: LogCapture, expected: str) -> None:
    records = logs.records()
    assert records, "no log records"
    assert {r.get("request_id") for r in records} == {expected}, records


@pytest.mark.parametrize("header", ["request-id", "x-request-id"])
async def test_incoming_id_is_used_everywhere(
    client: httpx.AsyncClient,
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
    make_settings: Callable[..., Settings],
    header: str,
) -> None:
    logs = capture_logs(make_settings(log_level="debug"))
    upstream.script.push(Reply(json_body=canary_reply(), headers={"x-request-id": "req_up_0001"}))
    reply = await client.post("/v1/messages", json=BODY, headers={header: "trace-abc-12345"})
    assert reply.status_code == 200
    assert reply.headers.get_list("request-id") == ["trace-abc-12345"]
    assert upstream.script.received[-1].headers["x-client-request-id"] == "trace-abc-12345"
    _assert_one_id(logs, "trace-abc-12345")
    (access,) = logs.access()
    assert access["upstream_request_id"] == "req_up_0001" and access["upstream_status"] == 200


@pytest.mark.parametrize("bad", ["short", "has spaces and <angle> brackets", "x" * 200, "ünïcode-id-123"])
async def test_malformed_or_oversized_id_is_replaced_never_echoed(
    client: httpx.AsyncClient,
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
    make_settings: Callable[..., Settings],
    bad: str,
) -> None:
    logs = capture_logs(make_settings())
    reply = await client.post("/v1/messages", json=BODY, headers={b"x-request-id": bad.encode("utf-8")})
    generated = reply.headers["request-id"]
    assert generated.startswith("req_") and len(generated) == 28
    assert upstream.script.received[-1].headers["x-client-request-id"] == generated
    assert bad not in logs.text and bad not in reply.text
    _assert_one_id(logs, generated)


async def test_same_id_after_an_upstream_error(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
) -> None:
    settings = make_settings(max_retries=0)
    logs = capture_logs(settings)
    app = await app_factory(settings)
    upstream.script.push(
        Reply(status=500, json_body={"error": {"message": "x"}}, headers={"x-request-id": "req_up_err"})
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        reply = await http.post("/v1/messages", json=BODY, headers={"request-id": "client-chosen-id-1"})
    assert reply.status_code == 500
    assert reply.headers["request-id"] == reply.json()["request_id"] == "client-chosen-id-1"
    assert upstream.script.received[-1].headers["x-client-request-id"] == "client-chosen-id-1"
    _assert_one_id(logs, "client-chosen-id-1")
    (access,) = logs.access()
    assert (access["upstream_status"], access["upstream_request_id"]) == (500, "req_up_err")
    assert (access["error_type"], access["upstream_error_type"]) == ("api_error", "api_error")


class _ExplodingTransport(httpx.AsyncBaseTransport):
    """A bug below the relay: raises a non-HTTP exception whose message holds request data."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("CANARY-exception-message-9e2f " + request.content.decode())


async def test_unhandled_exception_keeps_id_and_logs_no_message(
    make_settings: Callable[..., Settings], capture_logs: Callable[[Settings], LogCapture]
) -> None:
    settings = make_settings(max_retries=0)
    logs = capture_logs(settings)
    app = create_app(settings, transport=_ExplodingTransport())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=GATEWAY) as http:
            reply = await http.post("/v1/messages", json=BODY, headers={"request-id": "bug-report-id-1"})
    assert reply.status_code == 500
    assert reply.headers["request-id"] == reply.json()["request_id"] == "bug-report-id-1"
    assert "CANARY-exception-message-9e2f" not in logs.text and "CANARY" not in reply.text
    assert leaks(logs.text) == []
    _assert_one_id(logs, "bug-report-id-1")
    unhandled = [r for r in logs.records() if r["event"] == "unhandled exception"]
    assert unhandled and unhandled[0]["exception_type"] == "RuntimeError"
    assert logs.access()[0]["status"] == 500
