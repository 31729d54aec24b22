"""The canary through `stream: true` over real HTTP (uvicorn), including a client that leaves mid-stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.observability.helpers import MARKERS, LogCapture, canary_reply, canary_request, leaks, scrape
from tests.servers import serving
from tests.streamkit import fold, parse_sse

DISCONNECTS = "messages_bridge_client_disconnects_total"


def _sse_chunks() -> list[bytes]:
    """The canary reply as a Responses event stream, one event per chunk."""
    return [event + b"\n\n" for event in encode_sse(events_for(canary_reply())).split(b"\n\n") if event]


async def _access_record(logs: LogCapture, request_id: str) -> dict[str, Any]:
    """The access record of `request_id` (emitted when the stream ends, so poll briefly)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in logs.access() if r.get("request_id") == request_id]
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no access record for {request_id}: {logs.text}")


async def test_stream_and_disconnect_keep_content_out_and_one_id(
    make_settings: Callable[..., Settings], upstream: FakeUpstream, capture_logs: Callable[[Settings], LogCapture]
) -> None:
    settings = make_settings(log_level="debug", ping_interval=0.05)
    logs = capture_logs(settings)
    body = canary_request(stream=True)
    with serving(create_app(settings)) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            before = scrape((await http.get("/metrics")).text)
            upstream.script.push(Reply(chunks=_sse_chunks(), headers={"x-request-id": "req_up_stream"}))
            full = await http.post("/v1/messages", json=body, headers={"x-request-id": "stream-id-00001"})
            assert full.status_code == 200
            folded = json.dumps(fold(parse_sse(full.content)))
            assert MARKERS["reply_text"] in folded and MARKERS["reply_args"] in folded  # content really flowed
            assert full.headers["request-id"] == "stream-id-00001"
            assert upstream.script.received[-1].headers["x-client-request-id"] == "stream-id-00001"

            upstream.script.push(Reply(chunks=_sse_chunks(), delay=0.2))
            async with http.stream("POST", "/v1/messages", json=body, headers={"request-id": "stream-id-00002"}) as cut:
                async for chunk in cut.aiter_bytes():
                    if b"message_start" in chunk:
                        break
            left = await _access_record(logs, "stream-id-00002")
            after = scrape((await http.get("/metrics")).text)
    done = await _access_record(logs, "stream-id-00001")
    assert done["stream"] is True and done["first_token_ms"] is not None and done["output_tokens"] == 30
    assert done["upstream_request_id"] == "req_up_stream" and done["disconnected"] is False
    assert left["disconnected"] is True and left["stream"] is True
    key = (DISCONNECTS, (("route", "/v1/messages"),))
    assert after.get(key, 0) - before.get(key, 0) == 1
    assert after[("messages_bridge_active_streams", ())] == 0
    ids = {r.get("request_id") for r in logs.records() if r["logger"].startswith("messages_bridge")}
    assert {"stream-id-00001", "stream-id-00002"} <= ids
    assert leaks(logs.text) == []
    assert leaks("\n".join(str(v) for v in after)) == []
