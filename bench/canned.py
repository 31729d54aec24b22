"""The canned upstream of the in-process cost scripts (`obs_cost`, `routing_cost`, `team_cost`): one short text
answer, as JSON or as an SSE stream, behind `httpx.MockTransport(canned_upstream)`."""

from __future__ import annotations

import json
from typing import Any

import httpx

from messages_bridge.demo.events import encode_sse, events_for

REPLY: dict[str, Any] = {
    "id": "resp_bench",
    "object": "response",
    "status": "completed",
    "model": "gpt-5",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hi! " * 20, "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52},
}
SSE = encode_sse(events_for(REPLY))


def canned_upstream(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=REPLY, headers={"x-request-id": "req_up"})
