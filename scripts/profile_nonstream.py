"""Per-request cost of the non-streaming path: N requests through the ASGI app with a canned MockTransport upstream.

    python scripts/profile_nonstream.py [capture.json] [N]      # timings, then a cProfile summary

Prints µs/request for the whole app (httpx ASGITransport in, MockTransport out) and for the pure part alone
(decode + translate + encode the upstream body + translate the response back). Not a benchmark: see bench/.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import httpx
import msgspec

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.protocol import responses as r
from messages_bridge.protocol.request_fields import MESSAGES
from messages_bridge.translate.request import to_responses_request
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.tools import tool_set

DEFAULT_CAPTURE = (
    Path(__file__).resolve().parents[1] / "tests/fixtures/captures/messages_main_after_read_tool_result.json"
)
CANNED = json.dumps(
    {
        "id": "resp_0123456789",
        "object": "response",
        "status": "completed",
        "model": "gpt-5",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Done. " * 40, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 30000,
            "input_tokens_details": {"cached_tokens": 28000},
            "output_tokens": 120,
            "output_tokens_details": {"reasoning_tokens": 40},
            "total_tokens": 30120,
        },
    }
).encode()


def _canned(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=CANNED, headers={"content-type": "application/json"})


async def _through_app(body: bytes, n: int) -> float:
    settings = Settings(openai_api_key="sk-x", openai_base_url="http://upstream.test/v1", log_level="error")
    app = create_app(settings, transport=httpx.MockTransport(_canned))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            headers = {"content-type": "application/json"}
            for _ in range(20):  # warm-up
                assert (await http.post("/v1/messages", content=body, headers=headers)).status_code == 200
            started = time.perf_counter()
            for _ in range(n):
                await http.post("/v1/messages", content=body, headers=headers)
            return (time.perf_counter() - started) / n


def _pure(body: bytes, n: int) -> float:
    settings = Settings(openai_api_key="sk-x", openai_base_url="http://upstream.test/v1")
    encoder = msgspec.json.Encoder()
    started = time.perf_counter()
    for _ in range(n):
        req = MESSAGES.decode(body).request
        t = to_responses_request(req, tool_set(req.tools), settings.profile(req.model), api_version="2023-06-01")
        encoder.encode(t.body)
        encoder.encode(to_anthropic_message(r.RESPONSE_DECODER.decode(CANNED), t.reply, model=req.model))
    return (time.perf_counter() - started) / n


def main() -> None:
    capture = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CAPTURE
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    request = json.loads(capture.read_text())["request"]["body"]
    request["stream"] = False
    body = json.dumps(request).encode()
    tools = len(request.get("tools", []))
    out = sys.stdout.write
    out(f"capture {capture.name}: {len(body) / 1024:.0f} KiB, {len(request['messages'])} messages, {tools} tools\n")
    out(f"pure translate (decode+translate+encode, both ways): {_pure(body, n) * 1e6:8.0f} µs/request\n")
    app_us = asyncio.run(_through_app(body, n)) * 1e6
    out(f"whole app via ASGITransport + MockTransport:        {app_us:8.0f} µs/request (N={n})\n")
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_through_app(body, max(50, n // 5)))
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
