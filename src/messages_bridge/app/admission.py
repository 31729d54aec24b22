"""Admission to the routes that call the upstream (pure ASGI middleware).

- Beyond `max_concurrency` requests in flight, or while draining, a request is refused at once with 529
  `overloaded_error` and `retry-after`, before its body is read. Below the bound the cost is a comparison and
  two integer updates.
- When the client disconnects while its request is being handled (waiting for the upstream, between retries,
  mid-stream), the handler is cancelled, which closes the upstream request and releases its connection.
  Neither Starlette nor uvicorn do that for a non-streaming response on their own.
"""

from __future__ import annotations

import asyncio

import anyio
from asgi_correlation_id import correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from messages_bridge.app.lifecycle import Lifecycle
from messages_bridge.errors import OverloadedError, error_body
from messages_bridge.observability.record import record_of

UPSTREAM_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
SATURATED_RETRY = "1"
DRAINING_RETRY_AFTER = "5"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in UPSTREAM_PATHS:
            await self.app(scope, receive, send)
            return
        lifecycle = self.lifecycle
        if lifecycle.draining:
            await _refuse(scope, send, "The gateway is shutting down; retry on another instance", DRAINING_RETRY_AFTER)
            return
        if lifecycle.inflight >= lifecycle.max_concurrency:
            await _refuse(scope, send, "Overloaded: too many concurrent requests on this gateway", SATURATED_RETRY)
            return
        lifecycle.enter()
        try:
            await _cancel_on_disconnect(self.app, scope, receive, send)
        finally:
            lifecycle.leave()


async def _refuse(scope: Scope, send: Send, message: str, retry_after: str) -> None:
    record_of(scope).route = scope["path"]  # refused before routing: still logged and counted under its route
    body = error_body(OverloadedError(message), correlation_id.get())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after.encode()),
    ]
    await send({"type": "http.response.start", "status": OverloadedError.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _cancel_on_disconnect(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app`; once the request body is in, a watcher owns `receive` and cancels `app` on a disconnect."""
    body_done = asyncio.Event()
    disconnected = asyncio.Event()
    response_done = False

    async def app_receive() -> Message:
        if body_done.is_set():
            await disconnected.wait()
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
        elif not message.get("more_body", False):
            body_done.set()
        return message

    async def app_send(message: Message) -> None:
        nonlocal response_done
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            response_done = True
        await send(message)

    async def watch(cancel: anyio.CancelScope) -> None:
        await body_done.wait()
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()
        if not response_done:  # after the response, a server reports "disconnect" for any receive()
            cancel.cancel()

    with anyio.CancelScope() as cancel:
        watcher = asyncio.create_task(watch(cancel))
        try:
            await app(scope, app_receive, app_send)
        finally:
            watcher.cancel()
