"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with limits enforced before a request reaches the app.

uvicorn's own protocols leave a server open to slow or stuck clients: httptools (what `http="auto"` picks when it
is installed, as with `uvicorn[standard]`) has no limit on a request head — it accumulates a header value by
repeated concatenation, so one 128 MB header costs seconds of CPU — and neither protocol has a timeout for a head or
a body that never finishes. This subclass adds, per connection:

- a head limit: bytes (`max_header_bytes`) and header count (`max_headers`) → 431. Bytes are counted as they are
  handed to the parser, up to the limit and then in 8 KiB pieces, so the parser never sees more than one piece past
  it; a completed head is measured exactly before the app is started;
- a head timeout (`header_timeout`), from the connection's opening or the request's first read → 408 (or a plain
  close when nothing at all was sent);
- a body timeout: the body may pause at most `body_timeout` seconds, and must arrive within `body_timeout` plus
  one second per `min_body_rate` bytes (so one byte per second is cut off) → 408, and the app sees a disconnect;
- a cap on open connections (`max_connections` per process) → 503 `overloaded_error` with `retry-after`.

Refusals are written here, never by the app (which does not see the request); each is an Anthropic error envelope
with `connection: close`. What the client still sends is read and discarded for a moment (a close with unread data
would reset the connection and could destroy the answer in flight), then the connection is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from messages_bridge.app.factory import new_request_id
from messages_bridge.errors import (
    GatewayError,
    InvalidRequestError,
    OverloadedError,
    UpstreamTimeoutError,
    error_body,
)

logger = logging.getLogger("messages_bridge.serving")
FEED_BYTES = 8 * 1024  # past the head limit, what the parser may still be handed before the head is refused
LINGER_SECONDS = 1.0  # after a refusal, how long the client's further bytes are read and discarded


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    min_body_rate: int = 1024
    max_connections: int = 4096


class _Refusal(Exception):
    """Raised inside a parser callback: the request is refused with this status and error."""

    def __init__(self, status: int, error: GatewayError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


def _head_too_large(limits: ConnectionLimits) -> _Refusal:
    message = (
        f"Request header fields too large: at most {limits.max_header_bytes} bytes and {limits.max_headers} fields"
    )
    return _Refusal(431, InvalidRequestError(message))


class GuardedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus the limits of `ConnectionLimits` (built by uvicorn through a `functools.partial`)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._in_head = True  # from the opening (or a request's first byte) until its head is complete
        self._begun = False  # a byte of the current request has arrived
        self._head_bytes = 0  # raw bytes fed to the parser while in a head (over by at most one piece)
        self._body_pending = False  # a head is complete, its body is not
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = self._body_last = 0.0
        self._body_bytes = 0
        self._refusing = False

    # --- the connection -----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            error = OverloadedError("Overloaded: too many open connections", headers={"retry-after": "1"})
            self._refuse(503, error)
            return
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return  # after a refusal: read and dropped until the linger ends
        self._unset_keepalive_if_required()
        offset, size = 0, len(data)
        while offset < size:
            if self._in_head:  # up to the limit, then pieces: an oversized head is caught one piece past it
                room = max(FEED_BYTES, self.limits.max_header_bytes - self._head_bytes)
                piece = data[offset : offset + room] if offset or size > room else data
                self._head_bytes += len(piece)
            else:
                piece = data[offset:] if offset else data
            offset += len(piece)
            if not self._feed(piece):
                return
            if self._in_head and self._head_bytes > self.limits.max_header_bytes:
                self._refuse_head(431, _head_too_large(self.limits).error)
                return
        self._arm_timers()

    def _arm_timers(self) -> None:
        """Time what is still incomplete after this read (most requests arrive whole in one: no timer at all)."""
        if self._in_head:
            if self._begun and self._head_timer is None:  # a later request's head, timed from its first read
                self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)
        elif self._body_pending and self._body_timer is None:
            now = self.loop.time()
            self._body_started = self._body_last = now
            self._body_timer = self.loop.call_at(now + self.limits.body_timeout, self._check_body)

    def _feed(self, piece: bytes) -> bool:
        """Parse one piece as uvicorn does; False once the connection is being closed or upgraded."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refusal):
                self._refuse_head(exc.__context__.status, exc.__context__.error)
            else:
                self._bad_request()
            return False
        except httptools.HttpParserError:
            self._bad_request()
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return not self.transport.is_closing()

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self._cancel_timers()
        self.send_400_response(message)

    # --- parser callbacks ---------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = self._in_head = True  # the head counter was zeroed when the previous head completed

    def on_headers_complete(self) -> None:
        if self._head_bytes > self.limits.max_header_bytes or len(self.headers) > self.limits.max_headers:
            self._check_head()  # the read that ended the head may have carried body bytes too: count exactly
        self._begun = self._in_head = False
        self._head_bytes = self._body_bytes = 0
        self._body_pending = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def _check_head(self) -> None:
        """Refuse (before the app is started) a head over the limits; raised inside the parser's callback."""
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes or len(self.headers) > self.limits.max_headers:
            raise _head_too_large(self.limits)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._body_last = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_pending = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # --- timeouts and refusals ----------------------------------------------------------------------------------

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._begun:
            self.transport.close()  # not one byte of a request: nothing to answer
            return
        self._refuse_head(408, UpstreamTimeoutError("Request timeout: the request head was not received in time"))

    def _body_deadline(self) -> float:
        limits = self.limits
        by_rate = self._body_started + limits.body_timeout + self._body_bytes / limits.min_body_rate
        return min(by_rate, self._body_last + limits.body_timeout)

    def _check_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._in_head:
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the app is not reading yet: the client is not to blame for the wait
            self._body_started = now - self._body_bytes / self.limits.min_body_rate
            self._body_last = now
        deadline = self._body_deadline()
        if now < deadline:
            self._body_timer = self.loop.call_at(deadline, self._check_body)
            return
        cycle = self.cycle
        if cycle.response_started:
            self.transport.close()  # answered already; the rest of the body will not come
            return
        cycle.disconnected = True  # the app waits for the body: it sees the client gone, its answer is dropped
        cycle.message_event.set()
        self._refuse(408, UpstreamTimeoutError("Request timeout: the request body was not received in time"))

    def _refuse_head(self, status: int, error: GatewayError) -> None:
        """Refuse the request whose head is being read; behind an earlier request still being answered (pipelined),
        nothing can be written in front of that answer, so the connection is closed instead."""
        earlier: RequestResponseCycle | None = self.cycle
        if earlier is not None and not earlier.response_complete:
            logger.warning("pipelined request refused before the app: %d, connection closed", status)
            self._refusing = True
            self._cancel_timers()
            self.transport.close()
            return
        self._refuse(status, error)

    def _refuse(self, status: int, error: GatewayError) -> None:
        """Answer `status` with `error`'s envelope, close our side, and drop the connection after the linger."""
        self._refusing = True
        self._cancel_timers()
        logger.warning("request refused before the app: %d %s", status, error.message)
        request_id = new_request_id()
        body = error_body(error, request_id)
        headers = [*self.server_state.default_headers]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(b"request-id", request_id.encode()), (b"connection", b"close")]
        headers += [(k.encode(), v.encode()) for k, v in error.headers.items()]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.abort)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
