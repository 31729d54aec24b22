"""Pure ASGI middleware: the request-id alias shim and the access log (one record + metrics per request).

Pure ASGI (not `BaseHTTPMiddleware`) so the correlation id's contextvar set outside is the one the handler sees, and
so a streaming response is timed to its last byte. The `RequestRecord` travels in the scope (`record.attach`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from messages_bridge.config import Settings
from messages_bridge.observability.logs import ACCESS_LOGGER, CONTENT_LOGGER, Masker, settings_secrets
from messages_bridge.observability.metrics import ACTIVE_STREAMS, Metrics
from messages_bridge.observability.record import RequestRecord, attach, log_fields
from messages_bridge.observability.tracing import Tracing, setup_tracing

_access = logging.getLogger(ACCESS_LOGGER)
_content = logging.getLogger(CONTENT_LOGGER)
UNMATCHED_ROUTE = "unmatched"
_CONTENT_CAP = 256 * 1024


class RequestIdAlias:
    """Copies `x-request-id` to `request-id` when only the former was sent.

    asgi-correlation-id reads exactly one header name; we answer with Anthropic's `request-id` but clients and
    proxies commonly send `x-request-id`. The copy happens before validation, so a malformed value is still replaced.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            if not any(name == b"request-id" for name, _ in headers):
                alias = next((value for name, value in headers if name == b"x-request-id"), None)
                if alias is not None:
                    scope["headers"] = [*headers, (b"request-id", alias)]
        await self.app(scope, receive, send)


class RecordScope:
    """Attaches a fresh `RequestRecord` per HTTP request when the access log (which attaches its own) is left out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        attach(scope, RequestRecord())
        await self.app(scope, receive, send)


class _Capture:
    """Opt-in body capture for `BRIDGE_LOG_CONTENT=true` (bounded; absent otherwise)."""

    __slots__ = ("request", "response")

    def __init__(self) -> None:
        self.request = bytearray()
        self.response = bytearray()

    @staticmethod
    def add(buffer: bytearray, chunk: bytes) -> None:
        if len(buffer) < _CONTENT_CAP:
            buffer += chunk[: _CONTENT_CAP - len(buffer)]


class AccessLog:
    """Attaches a fresh `RequestRecord`, measures sizes/status/timings, then logs it and updates the metrics."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, tracing: Tracing | None = None, content_masker: Masker | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.content_masker = content_masker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        attach(scope, record)
        capture = _Capture() if self.content_masker is not None else None
        finished = False
        streaming = False

        async def receive_counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body: bytes = message.get("body", b"")
                record.bytes_in += len(body)
                if capture is not None:
                    capture.add(capture.request, body)
            elif message["type"] == "http.disconnect" and not finished:
                record.disconnected = True
            return message

        async def send_counted(message: Message) -> None:
            nonlocal finished, streaming
            if message["type"] == "http.response.start":
                record.status = message["status"]
                streaming = _is_event_stream(message)
                if streaming:
                    ACTIVE_STREAMS.inc()
            elif message["type"] == "http.response.body":
                body: bytes = message.get("body", b"")
                if body and record.first_byte is None:
                    record.first_byte = time.perf_counter()
                record.bytes_out += len(body)
                if capture is not None:
                    capture.add(capture.response, body)
                finished = not message.get("more_body", False)
            try:
                await send(message)
            except OSError:
                record.disconnected = True
                raise

        span = self.tracing.start_request(scope) if self.tracing is not None else None
        try:
            await self.app(scope, receive_counted, send_counted)
        except asyncio.CancelledError:
            record.disconnected = not finished
            raise
        except Exception:
            record.error_type = record.error_type or "api_error"
            record.status = record.status or 500
            raise
        finally:
            if streaming:
                ACTIVE_STREAMS.dec()
            self._finish(scope, record, capture, span)

    def _finish(self, scope: Scope, record: RequestRecord, capture: _Capture | None, span: Any) -> None:
        done = time.perf_counter()
        route = scope.get("route")
        record.route = getattr(route, "path", None) or record.route or UNMATCHED_ROUTE
        if record.status is None:
            record.status = 499 if record.disconnected else 500
        self.metrics.observe(record, done)
        if _access.isEnabledFor(logging.INFO):
            # A ready-made record skips findCaller() and the `extra` clash checks: this line runs once per request.
            entry = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "request", None, None)
            entry.__dict__["access"] = log_fields(record, done)
            _access.handle(entry)
        if capture is not None and self.content_masker is not None:
            mask = self.content_masker
            _content.info(
                "content",
                extra={
                    "request_body": mask.json_text(capture.request.decode(errors="replace")),
                    "response_body": mask.json_text(capture.response.decode(errors="replace")),
                },
            )
        if span is not None and self.tracing is not None:
            self.tracing.end_request(span, record)


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False


def instrument(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` wrapped in the access log (metrics, optional tracing, opt-in content capture)."""
    masker = Masker(settings_secrets(settings)) if settings.log_content else None
    return AccessLog(app, metrics=Metrics(settings), tracing=setup_tracing(), content_masker=masker)
