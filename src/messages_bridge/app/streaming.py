"""`stream: true`: open the upstream stream first, then relay Anthropic SSE frames as they are produced.

Failures before the first byte (an upstream HTTP error, a connect failure) raise, so the client gets an ordinary
JSON error with its status; once the 200 is out, failures are in-band `error` events and the stream ends.
A producer task reads and translates the upstream, so the response body can wait on it with the ping interval as
a timeout (a silent upstream — long reasoning — gets `ping`s without cancelling a read). Whatever ends the
response (the end, an error, a client disconnect cancelling the handler), the upstream response is closed at once,
shielded from that cancellation, so its connection is released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import anyio
import httpx
import msgspec
from asgi_correlation_id import correlation_id
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from messages_bridge.app.dispatch import Plan
from messages_bridge.app.relay import client_ratelimit_headers, upstream_error
from messages_bridge.app.state import GatewayState
from messages_bridge.errors import ApiError, GatewayError
from messages_bridge.observability.logs import Masker
from messages_bridge.observability.record import RequestRecord, current
from messages_bridge.observability.upstream import note_upstream_error, note_upstream_status, note_usage
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.anthropic_stream import PING_FRAME, encode_events
from messages_bridge.routing.router import Target
from messages_bridge.translate.stream import StreamTranslator
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.upstream.client import ResponsesClient, UpstreamHTTPError, stream_events

_ENCODER = msgspec.json.Encoder()
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
QUEUE_WRITES = 64  # frames waiting for a slow client; the producer waits beyond that (bounded memory)
DRAIN_SECONDS = 1.0  # after the terminal event, read the upstream's end so its connection can be reused
_DRAINING: set[asyncio.Task[None]] = set()  # strong references to producers finishing a drain
_errors_logger = logging.getLogger("messages_bridge.errors")  # where the app's handler logs a bug


async def stream_message(state: GatewayState, req: a.MessagesRequest, plan: Plan) -> Response:
    """Open the upstream stream on the first target that answers (errors raise → JSON), then `text/event-stream`."""
    record = current()
    record.stream = True
    record.upstream_started = time.perf_counter()
    stack = AsyncExitStack()
    request_id = correlation_id.get()

    async def open_stream(target: Target, client: ResponsesClient) -> tuple[httpx.Response, Target]:
        translation = plan.translation(req, target)
        record.upstream_model = translation.body["model"]
        try:
            response = await stack.enter_async_context(
                client.stream(_ENCODER.encode(translation.body), request_id=request_id)
            )
        except UpstreamHTTPError as exc:
            error = upstream_error(exc, req, plan.tools, target.profile.context_window)
            _note_failure(record, error)
            raise error from exc
        except GatewayError as exc:
            _note_failure(record, exc)
            raise
        return response, target

    upstream, target = await plan.run(open_stream)
    record.upstream_done = None
    note_upstream_status(upstream.status_code, upstream.headers.get("x-request-id"))
    window = target.profile.context_window
    translator = StreamTranslator(
        plan.translation(req, target).reply,
        model=req.model,
        input_tokens=estimate_input_tokens(req, plan.tools),
        context_window=window,
    )
    relay = StreamRelay(
        upstream, translator, stack, ping_interval=state.settings.ping_interval, record=record, scrub=state.scrub,
        max_event_bytes=state.settings.max_upstream_event_bytes,
    )  # fmt: skip
    headers = {**HEADERS, **client_ratelimit_headers(upstream.headers)}
    return StreamingResponse(
        relay.body(), media_type="text/event-stream", headers=headers, background=BackgroundTask(relay.close)
    )


def prewarm_stream(message: a.Message) -> Response:
    """`max_tokens: 0` with `stream: true`: the pre-warm answer as a complete (empty) event stream."""
    start: a.Message = {**message, "stop_reason": None}
    delta = o.MessageDeltaBody(stop_reason="max_tokens", stop_sequence=None)
    frames = o.encode_events([o.MessageStart(message=start), o.MessageDelta(delta=delta, usage=message["usage"]),
                              o.MessageStop()])  # fmt: skip
    return Response(frames, media_type="text/event-stream", headers=HEADERS)


def _note_failure(record: RequestRecord, error: GatewayError) -> None:
    record.upstream_error_type = error.error_type
    record.upstream_done = time.perf_counter()


class StreamRelay:
    """One stream: a producer (upstream → translator → frames) and the response body (frames or pings)."""

    def __init__(self, upstream: httpx.Response, translator: StreamTranslator, stack: AsyncExitStack, *,
                 ping_interval: float, record: RequestRecord, scrub: Masker,
                 max_event_bytes: int) -> None:  # fmt: skip
        self._scrub = scrub
        self._translator = translator
        self._stack = stack
        self._ping = ping_interval
        self._record = record
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_WRITES)
        self._events = stream_events(upstream, max_event_bytes=max_event_bytes)
        self._producer: asyncio.Task[None] | None = None
        self._draining = False
        self._ended = False  # the producer is past its last frame: it releases the upstream itself
        self._closed = False

    async def body(self) -> AsyncIterator[bytes]:
        """The response body: each batch of frames as soon as it is produced, `ping` while the upstream is silent."""
        self._producer = asyncio.create_task(self._produce())
        queue, finished, sent = self._queue, False, False
        try:
            while True:
                try:
                    async with asyncio.timeout(self._ping):
                        data = await queue.get()
                except TimeoutError:
                    # Nothing may precede `message_start`, not even a ping. What was *sent* decides, not the
                    # translator's state: the timeout can fire just as the first frame is queued.
                    if not sent:
                        continue
                    data = PING_FRAME
                if data is None:
                    finished = True
                    return
                sent = True
                yield data
        finally:
            if not finished:
                self._record.disconnected = True
            await self.close()

    async def close(self) -> None:
        """Stop the producer (unless it only drains a finished upstream) and release the upstream connection."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            producer = self._producer
            if producer is not None and not producer.done():
                if self._draining:
                    _DRAINING.add(producer)
                    producer.add_done_callback(_DRAINING.discard)
                    return
                if not self._ended:  # cancelling the producer's own release would leave the connection busy
                    producer.cancel()
                await asyncio.wait({producer})
            await self._release()

    async def _release(self) -> None:
        await self._stack.aclose()
        if self._record.upstream_done is None:
            self._record.upstream_done = time.perf_counter()

    async def _produce(self) -> None:
        translator = self._translator
        try:
            await self._pump()
        except GatewayError as exc:
            await self._put(translator.fail(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must still end the stream with an error event, not a cut
            # Logged as the non-streaming path logs a bug: the type only (the message could hold content).
            _errors_logger.error("unhandled exception", extra={"exception_type": type(exc).__name__})
            await self._put(translator.fail(ApiError("Internal server error")))
        self._note_end()
        await self._queue.put(None)
        self._ended = True
        if translator.error is None and not translator.close_upstream:
            self._draining = True
            await self._drain()
        with anyio.CancelScope(shield=True):
            await self._release()

    async def _pump(self) -> None:
        translator, record = self._translator, self._record
        async for events in self._events:
            if record.upstream_first_byte is None:
                record.upstream_first_byte = time.perf_counter()
            out: list[o.StreamEvent] = []
            for event in events:
                out += translator.feed(event)
                if record.first_token is None and translator.has_output:
                    # The first token goes out at once, not after the rest of this read (an upstream that
                    # bursts, or a long read, would otherwise delay it); later frames go out one write per read.
                    record.first_token = time.perf_counter()
                    await self._queue.put(self._encode(out))
                    out = []
                    await asyncio.sleep(0)  # a put with room does not switch tasks: let the body send it now
            if out:
                await self._queue.put(self._encode(out))
            if translator.done:
                return
        await self._put(translator.finish())

    async def _put(self, events: list[o.StreamEvent]) -> None:
        if events:
            await self._queue.put(self._encode(events))

    def _encode(self, events: list[o.StreamEvent]) -> bytes:
        """The frames, with the in-band error's message (it may quote upstream text) scrubbed of secrets."""
        if self._translator.error is not None:
            for event in events:
                if isinstance(event, o.ErrorEvent):
                    event.error.message = self._scrub(event.error.message)
        return encode_events(events)

    async def _drain(self) -> None:
        """Read what follows the terminal event (normally just the end of the body), bounded in time."""
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _ in self._events:
                    pass
        except (TimeoutError, GatewayError):
            pass

    def _note_end(self) -> None:
        translator, record = self._translator, self._record
        record.upstream_done = time.perf_counter()
        if translator.usage is not None:
            note_usage(translator.usage, translator.stop_reason)
        if translator.error is not None:
            record.error_type = translator.error.error_type
            note_upstream_error(translator.error, record)
