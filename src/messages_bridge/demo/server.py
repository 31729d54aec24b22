"""The simulator as an ASGI app: in-process in demo mode, over real HTTP on 127.0.0.1 in the tests.

A `Script` lets tests queue exact replies (a status and JSON body, or SSE chunks with delays) and records
every request the gateway sent; with an empty script the simulator answers.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.simulator import SimulatorError, count_input_tokens, respond


@dataclass(slots=True)
class Reply:
    """One scripted upstream answer: JSON (`json_body`) or SSE (`chunks`, sent `delay` seconds apart)."""

    status: int = 200
    json_body: Any = None
    chunks: list[bytes] | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering at all
    until: asyncio.Event | None = None  # ends the hang early once set (on the simulator's event loop)


@dataclass(slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: str = ""


@dataclass(slots=True)
class Script:
    replies: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)


async def _chunked(chunks: list[bytes], delay: float) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if delay:
            await asyncio.sleep(delay)
        yield chunk


def _render(reply: Reply) -> Response:
    if reply.chunks is not None:
        return StreamingResponse(
            _chunked(reply.chunks, reply.delay),
            status_code=reply.status,
            media_type="text/event-stream",
            headers=reply.headers,
        )
    return JSONResponse(reply.json_body, status_code=reply.status, headers=reply.headers)


async def _play(reply: Reply) -> Response:
    """A scripted reply, after its `hang`."""
    if reply.hang:
        with suppress(TimeoutError):
            await asyncio.wait_for((reply.until or asyncio.Event()).wait(), reply.hang)
    return _render(reply)


def _simulate(body: dict[str, Any]) -> Response:
    try:
        result = respond(body)
    except SimulatorError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    headers = {"x-request-id": "req_sim_" + result["id"][5:17]}
    if body.get("stream"):
        return Response(encode_sse(events_for(result)), media_type="text/event-stream", headers=headers)
    return JSONResponse(result, headers=headers)


def create_upstream_app(script: Script | None = None) -> Starlette:
    """The simulator's ASGI app; `script` (tests) can override replies and records requests."""

    async def responses(request: Request) -> Response:
        body = json.loads(await request.body())
        if script is not None:
            script.received.append(Received(request.url.path, dict(request.headers), body, request.url.query))
            if script.replies:
                return await _play(script.replies.popleft())
        return _simulate(body)

    async def input_tokens(request: Request) -> Response:
        body = json.loads(await request.body())
        if script is not None:
            script.received.append(Received(request.url.path, dict(request.headers), body, request.url.query))
            if script.replies:
                return await _play(script.replies.popleft())
        return JSONResponse(count_input_tokens(body))

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "demo-model", "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/responses/input_tokens", input_tokens, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
