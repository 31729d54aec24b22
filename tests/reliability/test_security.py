"""Security under faults: keys and content never leak in any failure, and the gateway never fetches URLs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import CLIENT_KEY, UPSTREAM_KEY, LogCapture, canary_request, capture_logs, leaks
from tests.reliability.faults import blackhole, ok_response, raw_upstream, read_request, reset, response_head
from tests.reliability.test_stream_faults import sse_server, upstream_events
from tests.servers import free_port

__all__ = ["capture_logs"]
AUTH = {"x-api-key": CLIENT_KEY}


def echoing(status: int) -> Reply:
    """An upstream error whose message quotes the gateway's key (as a careless upstream might)."""
    message = f"bad request from key {UPSTREAM_KEY}"
    return Reply(status=status, json_body={"error": {"message": message, "code": "invalid_value"}})


async def _reset_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(response_head(content_type=b"application/json", extra=b"content-length: 900\r\n") + b'{"id": "r')
    await writer.drain()
    reset(writer)


@asynccontextmanager
async def fault_upstreams() -> AsyncIterator[dict[str, str]]:
    """Base URLs of upstreams that each fail one way."""
    call = {"type": "function_call", "id": "fc", "call_id": "c", "name": "lookup", "arguments": '{"q": "x'}
    async with AsyncExitStack() as stack:
        urls = {"refused": f"http://127.0.0.1:{free_port()}/v1"}
        urls["timeout"] = f"http://127.0.0.1:{await stack.enter_async_context(blackhole())}/v1"
        servers = {
            "reset": _reset_handler,
            "stream_reset": sse_server(upstream_events()[:6], "reset"),
            "no_terminal": sse_server(upstream_events()[:-1], "close"),
            "malformed": sse_server([*upstream_events()[:4], b"event: x\ndata: {oops\n\n"], "close"),
            "bad_args": sse_server(upstream_events(ok_response(output=[call])), "close"),
        }
        for name, handler in servers.items():
            urls[name] = (await stack.enter_async_context(raw_upstream(handler))).base_url
        yield urls


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_no_fault_leaks_a_key_or_content(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
    caplog: Any,
    stream: bool,
) -> None:
    base = {"api_keys": CLIENT_KEY, "log_level": "debug", "max_retries": 2, "max_retry_wait": 0.05}
    base |= {"connect_timeout": 0.3, "read_timeout": 0.5, "retry_budget": 1.0}
    body = canary_request(stream=stream)
    texts: list[str] = []
    async with fault_upstreams() as urls:
        upstream.script.push(
            Reply(hang=2.0),
            echoing(400),
            echoing(401),
            *[echoing(500)] * 3,
            Reply(status=429, json_body={"error": {"message": "slow"}}, headers={"retry-after": "60"}),
        )
        targets = [upstream.base_url] * 5 + list(urls.values())
        for url in targets:
            settings = make_settings(**base, openai_base_url=url)
            logs = capture_logs(settings)
            app = await app_factory(settings)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
                reply = await http.post("/v1/messages", json=body, headers=AUTH)
                texts += [reply.text, json.dumps(dict(reply.headers)), (await http.get("/metrics")).text, logs.text]
                assert reply.status_code >= 400 or "event: error" in reply.text, (url, reply.text[:300])
    assert len(texts) == 4 * len(targets)
    texts += [caplog.text, " ".join(str(r.__dict__) for r in caplog.records)]
    assert [leaks(t) for t in texts if leaks(t)] == []


async def test_image_and_document_urls_are_forwarded_never_fetched(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    fetched: list[bytes] = []

    async def bait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fetched.append(await reader.read(1024))

    async with raw_upstream(bait) as target:
        image_url = f"http://127.0.0.1:{target.port}/image.png"
        doc_url = f"http://127.0.0.1:{target.port}/secret.pdf"
        content = [
            {"type": "image", "source": {"type": "url", "url": image_url}},
            {"type": "document", "source": {"type": "url", "url": doc_url}},
            {"type": "text", "text": "describe"},
        ]
        app = await app_factory(make_settings())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
            for stream in (False, True):
                body = {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 32,
                    "stream": stream,
                    "messages": [{"role": "user", "content": content}],
                }
                assert (await http.post("/v1/messages", json=body)).status_code == 200
                count = {"model": "claude-sonnet-4-5", "messages": body["messages"]}
                assert (await http.post("/v1/messages/count_tokens", json=count)).status_code == 200
        await asyncio.sleep(0.2)
        assert target.opened == 0 and fetched == []
    sent = json.dumps(upstream.requests)
    assert image_url in sent and doc_url in sent  # passed on for the upstream to fetch
