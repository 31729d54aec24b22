"""The one small interface to the upstream Responses API: an httpx transport behind three calls.

The client builds `httpx.Request`s itself and hands them to the transport: httpx's `AsyncClient` layer (URL
merging, auth and redirect machinery we never use) cost ~0.2 ms per request on the hot path. In production the
transport is `AiohttpTransport`; tests (and demo mode) swap in another httpx transport (`MockTransport`,
`ASGITransport`) without touching anything above this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import msgspec

from messages_bridge.errors import UpstreamProtocolError, from_transport_error
from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import responses as r
from messages_bridge.protocol.responses_stream import StreamEvent, decode_event
from messages_bridge.protocol.sse import DEFAULT_MAX_EVENT_BYTES, EventTooLargeError, ServerSentEvent, SSEDecoder
from messages_bridge.upstream.aiohttp_transport import AiohttpTransport
from messages_bridge.upstream.body import Pacer, error_body, raw_body, read_body
from messages_bridge.upstream.content import check_encoding
from messages_bridge.upstream.retry import NO_RETRIES, RetryPolicy, send_with_retries

REQUEST_ID_HEADER = "x-client-request-id"
EVENTS_PER_SLICE = 16
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class UpstreamHTTPError(Exception):
    """The upstream answered with a non-2xx status; `errors.from_upstream_status` maps it.

    The body is the upstream's, unscrubbed: secrets are blanked in the decoded message on its way to the client.
    """

    def __init__(self, status: int, body: bytes, headers: httpx.Headers) -> None:
        super().__init__(f"upstream HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    response: r.Response
    upstream_request_id: str | None
    status: int
    headers: httpx.Headers


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float

    def extension(self) -> dict[str, float]:
        """httpx's per-request timeout extension (what `AsyncClient` would have set)."""
        return {"connect": self.connect, "read": self.read, "write": self.read, "pool": self.connect}


def default_transport(*, max_connections: int, keepalive: float) -> httpx.AsyncBaseTransport:
    """The network transport for the process lifetime (never one per request)."""
    return AiohttpTransport(max_connections=max_connections, keepalive=keepalive)


class ResponsesClient:
    """Calls `POST {base}/responses`, `POST {base}/responses/input_tokens` and `GET {base}/models`."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        base_url: str,
        api_key: str | None,
        timeouts: Timeouts,
        retry: RetryPolicy = NO_RETRIES,
        key_header: str = "authorization",
        query: str = "",
        headers: dict[str, str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """`key_header="api-key"` sends the key bare (Azure); `query` (e.g. `?api-version=…`) ends every URL."""
        self.transport = transport
        self._max_body = max_body_bytes  # the largest (decoded) JSON answer held
        self._retry = retry
        self._base = base_url.rstrip("/")
        self._query = query
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = {"timeout": timeouts.extension()}
        self._probe_timeout = {"timeout": Timeouts(connect=5.0, read=5.0).extension()}
        # identity: a compressed answer could inflate far past what was sent (see upstream/content.py).
        self._headers = {
            **(headers or {}),
            "content-type": "application/json",
            "accept": "application/json",
            "accept-encoding": "identity",
        }
        if api_key:
            self._headers[key_header] = f"Bearer {api_key}" if key_header == "authorization" else api_key

    def _request_headers(self, request_id: str | None) -> dict[str, str]:
        if request_id is None:
            return self._headers
        return {**self._headers, REQUEST_ID_HEADER: request_id}

    def _url(self, path: str) -> httpx.URL:
        """Parsed once per path: httpx's URL parsing is a measurable share of a request."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._base + path + self._query)
        return url

    async def _send(
        self, path: str, body: bytes, request_id: str | None, facts: UpstreamFacts | None
    ) -> httpx.Response:
        """POST with retries (counted on `facts`); the response is open (streamed) until read or closed."""
        request = httpx.Request(
            "POST", self._url(path), content=body, headers=self._request_headers(request_id), extensions=self._timeout
        )
        try:
            return await send_with_retries(self._retry, lambda: self.transport.handle_async_request(request), facts)
        except httpx.HTTPError as exc:
            error = from_transport_error(exc)
            error.before_response = True  # nothing was answered: another upstream may take the request
            raise error from exc

    async def _post(
        self, path: str, body: bytes, request_id: str | None, facts: UpstreamFacts | None
    ) -> tuple[httpx.Response, bytearray]:
        """The upstream's 2xx answer and its (decoded, size-checked) body; a non-2xx raises `UpstreamHTTPError`."""
        reply = await self._send(path, body, request_id, facts)
        try:
            if reply.status_code >= 300:
                raise UpstreamHTTPError(reply.status_code, await error_body(reply), reply.headers)
            return reply, await read_body(reply, self._max_body)
        finally:
            await reply.aclose()

    async def create(self, body: bytes, *, request_id: str | None, facts: UpstreamFacts | None = None) -> UpstreamReply:
        """A non-streaming `Response`; raises `UpstreamHTTPError` or a `GatewayError`. Retries count on `facts`."""
        reply, content = await self._post("/responses", body, request_id, facts)
        try:
            response = r.RESPONSE_DECODER.decode(content)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError("The upstream answer is not a valid Responses API response") from exc
        return UpstreamReply(response, reply.headers.get("x-request-id"), reply.status_code, reply.headers)

    async def input_tokens(
        self, body: bytes, *, request_id: str | None, facts: UpstreamFacts | None = None
    ) -> int | None:
        """The upstream's input-token count, or None when it has no such endpoint (404/405)."""
        try:
            _, content = await self._post("/responses/input_tokens", body, request_id, facts)
        except UpstreamHTTPError as exc:
            if exc.status in (404, 405):
                return None
            raise
        try:
            counted = r.INPUT_TOKENS_DECODER.decode(content).input_tokens
        except ValueError:
            return None
        return counted if counted >= 0 else None  # a negative count is no count: the local estimate stands in

    @asynccontextmanager
    async def stream(
        self, body: bytes, *, request_id: str | None, facts: UpstreamFacts | None = None
    ) -> AsyncIterator[httpx.Response]:
        """An open streaming response (status already checked); closing the context releases the connection."""
        response = await self._send("/responses", body, request_id, facts)
        try:
            if response.status_code >= 300:
                raise UpstreamHTTPError(response.status_code, await error_body(response), response.headers)
            check_encoding(response.headers.get("content-encoding"))
            yield response
        finally:
            await response.aclose()

    async def ready(self) -> bool:
        """Whether the upstream answers at all (any HTTP status counts: it is reachable)."""
        request = httpx.Request("GET", self._url("/models"), headers=self._headers, extensions=self._probe_timeout)
        try:
            response = await self.transport.handle_async_request(request)
            await response.aclose()
        except httpx.HTTPError:
            return False
        return True

    async def aclose(self) -> None:
        await self.transport.aclose()


def _typed(frames: list[ServerSentEvent]) -> list[StreamEvent]:
    """Decode the frames this gateway acts on; a malformed one is an upstream fault (reported in-band)."""
    events: list[StreamEvent] = []
    for sse in frames:
        try:
            event = decode_event(sse)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError("The upstream sent a malformed stream event") from exc
        if event is not None:
            events.append(event)
    return events


async def stream_events(
    response: httpx.Response, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[list[StreamEvent]]:
    """The typed events of an open upstream stream, one list per network read (one wake-up per read, not per event).

    Transport failures mid-stream (read timeout, reset) come out as the mapped `GatewayError`; an event larger
    than `max_event_bytes` (decoded) as `UpstreamProtocolError`.
    """
    chunks, content = raw_body(response)
    decoder = SSEDecoder(max_event_bytes)
    pacer = Pacer()
    try:
        async for raw in chunks:
            for chunk in (raw,) if content.identity else content.feed(raw):
                await pacer.step(len(chunk))
                frames = decoder.feed(chunk)
                # A long read is handed on in slices, so its first events are translated (and its first token
                # sent) before the rest of it is decoded.
                if len(frames) <= EVENTS_PER_SLICE:
                    if events := _typed(frames):
                        yield events
                    continue
                for start in range(0, len(frames), EVENTS_PER_SLICE):
                    if events := _typed(frames[start : start + EVENTS_PER_SLICE]):
                        yield events
        frames = [frame for chunk in content.flush() for frame in decoder.feed(chunk)]
        frames += decoder.finish()
    except httpx.HTTPError as exc:
        raise from_transport_error(exc) from exc
    except EventTooLargeError as exc:
        raise UpstreamProtocolError(f"The upstream sent a stream event larger than {exc.limit} bytes") from exc
    if events := _typed(frames):
        yield events
