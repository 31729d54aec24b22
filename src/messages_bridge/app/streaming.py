"""`stream: true`: open the upstream stream first, then relay Anthropic SSE frames as they are produced.

Failures before the first byte (an upstream HTTP error, a connect failure) raise, so the client gets an ordinary
JSON error with its status; once the 200 is out, failures are in-band `error` events and the stream ends.
`EventStream` is one task group: a producer (upstream → translator → frames) writes into a bounded memory stream
that the response body reads with the ping interval as a timeout (a silent upstream — long reasoning — gets
`ping`s without cancelling a read). Whatever ends the response (the end, an error, a client disconnect), one
`finally` releases the upstream connection, shielded from cancellation, and hands the call's facts to the access
record; after a clean end the producer hands the connection to a background drain instead, so the upstream's end is
read and the connection reused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import anyio
import anyio.lowlevel
import httpx
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from asgi_correlation_id import correlation_id
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from messages_bridge.app.background import spawn
from messages_bridge.app.dispatch import Plan
from messages_bridge.app.relay import call_upstream, client_ratelimit_headers
from messages_bridge.app.state import GatewayState
from messages_bridge.errors import ApiError, GatewayError
from messages_bridge.observability.logs import Masker
from messages_bridge.observability.record import RequestRecord
from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.anthropic_stream import PING_FRAME, encode_events
from messages_bridge.protocol.responses_stream import StreamEvent
from messages_bridge.routing.router import Target
from messages_bridge.translate.blocks import BlockEvents
from messages_bridge.translate.stream import StreamTranslator
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.usage import empty_usage
from messages_bridge.upstream.client import ResponsesClient, stream_events

_ENCODER = msgspec.json.Encoder()
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
QUEUE_WRITES = 64  # frames waiting for a slow client; the producer waits beyond that (bounded memory)
DRAIN_SECONDS = 1.0  # after the terminal event, read the upstream's end so its connection can be reused
_errors_logger = logging.getLogger("messages_bridge.errors")  # where the app's handler logs a bug


async def stream_message(state: GatewayState, req: a.MessagesRequest, plan: Plan, record: RequestRecord) -> Response:
    """Open the upstream stream on the first target that answers (errors raise → JSON), then `text/event-stream`.

    The call's facts reach `record` when it is over: here if no stream starts, else at the stream's end.
    """
    stack = AsyncExitStack()
    request_id = correlation_id.get()
    facts = UpstreamFacts()

    async def open_stream(target: Target, client: ResponsesClient) -> tuple[httpx.Response, Target]:
        async def send(body: bytes) -> httpx.Response:
            return await stack.enter_async_context(client.stream(body, request_id=request_id, facts=facts))

        return await call_upstream(facts, req, plan, target, send), target

    try:
        upstream, target = await plan.run(open_stream, facts)
        facts.done = None  # the call goes on while the body is read
        facts.answered(upstream.status_code, upstream.headers.get("x-request-id"))
        translator = StreamTranslator(
            plan.translation(req, target).reply,
            model=req.model,
            input_tokens=estimate_input_tokens(req, plan.tools),
            context_window=target.profile.context_window,
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
        record.apply(facts)
        raise
    settings = state.settings
    events = stream_events(upstream, max_event_bytes=settings.max_upstream_event_bytes)
    headers = {**HEADERS, **client_ratelimit_headers(upstream.headers)}
    source = FrameSource(events, translator, facts=facts, scrub=state.scrub)
    return EventStream(source, stack, ping_interval=settings.ping_interval, record=record, headers=headers)


def message_stream(message: a.Message) -> Response:
    """A Message known whole (the pre-warm answer, web search unavailable) as a complete event stream."""
    start = o.MessageStart(
        {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": empty_usage(input_tokens=message["usage"]["input_tokens"]),
        }
    )
    end = o.MessageDeltaBody(message["stop_reason"] or "end_turn", message["stop_sequence"])
    events: list[o.StreamEvent] = [start, *BlockEvents().events(message["content"])]
    events += [o.MessageDelta(end, message["usage"]), o.MessageStop()]
    return Response(encode_events(events), media_type="text/event-stream", headers=HEADERS)


class FrameSource:
    """The producer's side: upstream events → translator → encoded frames, and the call's facts learnt from them."""

    def __init__(
        self,
        events: AsyncIterator[list[StreamEvent]],
        translator: StreamTranslator,
        *,
        facts: UpstreamFacts,
        scrub: Masker,
    ) -> None:
        self.events = events
        self.translator = translator
        self.facts = facts
        self._scrub = scrub

    async def produce(self, out: MemoryObjectSendStream[bytes]) -> None:
        """Every frame of the reply into `out`, ending with the terminal event or an in-band error."""
        translator = self.translator
        try:
            await self._pump(out)
        except GatewayError as exc:
            await self._put(out, translator.fail(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must still end the stream with an error event, not a cut
            # Logged as the non-streaming path logs a bug: the type only (the message could hold content).
            _errors_logger.error("unhandled exception", extra={"exception_type": type(exc).__name__})
            await self._put(out, translator.fail(ApiError("Internal server error")))
        self._note_end()

    @property
    def reusable(self) -> bool:
        """Whether the upstream ended cleanly, so reading its end leaves a connection worth keeping."""
        return self.translator.error is None and not self.translator.close_upstream

    async def _pump(self, out: MemoryObjectSendStream[bytes]) -> None:
        translator, facts = self.translator, self.facts
        async for events in self.events:
            if facts.first_byte is None:
                facts.first_byte = time.perf_counter()
            frames: list[o.StreamEvent] = []
            for event in events:
                frames += translator.feed(event)
                if facts.first_token is None and translator.has_output:
                    # The first token goes out at once, not after the rest of this read (an upstream that
                    # bursts, or a long read, would otherwise delay it); later frames go out one write per read.
                    facts.first_token = time.perf_counter()
                    await send_frames(out, self._encode(frames))
                    frames = []
                    await anyio.lowlevel.checkpoint()  # a send with room does not switch tasks: let the body write
            await self._put(out, frames)
            if translator.done:
                return
        await self._put(out, translator.finish())

    async def _put(self, out: MemoryObjectSendStream[bytes], events: list[o.StreamEvent]) -> None:
        if events:
            await send_frames(out, self._encode(events))

    def _encode(self, events: list[o.StreamEvent]) -> bytes:
        """The frames, with the in-band error's message (it may quote upstream text) scrubbed of secrets."""
        if self.translator.error is not None:
            for event in events:
                if isinstance(event, o.ErrorEvent):
                    event.error.message = self._scrub(event.error.message)
        return encode_events(events)

    def _note_end(self) -> None:
        translator, facts = self.translator, self.facts
        facts.done = time.perf_counter()
        if translator.usage is not None:
            facts.replied(translator.usage, translator.stop_reason)
        if translator.error is not None:
            facts.stream_error_type = translator.error.error_type
            facts.failed(translator.error)


class EventStream(StreamingResponse):
    """One streamed reply: the producer and the body in one task group; one `finally` releases the upstream and
    records the call's facts."""

    def __init__(
        self,
        source: FrameSource,
        upstream: AsyncExitStack,
        *,
        ping_interval: float,
        record: RequestRecord,
        headers: dict[str, str],
    ) -> None:
        super().__init__(self._body(), media_type="text/event-stream", headers=headers)
        self._source = source
        self._upstream = upstream  # emptied when the producer hands the connection to a drain
        self._ping = ping_interval
        self._record = record
        self._frames: MemoryObjectReceiveStream[bytes] | None = None
        self._complete = False  # the body sent the last frame

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        produced, self._frames = anyio.create_memory_object_stream[bytes](QUEUE_WRITES)
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._produce, produced)
                try:
                    await super().__call__(scope, receive, send)
                except Exception as exc:  # noqa: BLE001 - re-raised below, not wrapped in the group's ExceptionGroup
                    failure = exc
                group.cancel_scope.cancel()  # the body is over: a producer still writing has nobody to write to
        finally:
            produced.close()
            self._frames.close()
            facts = self._source.facts
            facts.cut = not self._complete
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
            if facts.done is None:
                facts.done = time.perf_counter()
            self._record.apply(facts)
        if failure is not None:
            raise failure

    async def _produce(self, out: MemoryObjectSendStream[bytes]) -> None:
        source = self._source
        with out:  # closing it ends the body
            await source.produce(out)
            if source.reusable:  # handed over before the body ends, so the `finally` finds nothing to release
                spawn(_drain(source.events, self._upstream.pop_all()))

    async def _body(self) -> AsyncIterator[bytes]:
        """The response body: each batch of frames as soon as it is produced, `ping` while the upstream is silent."""
        assert self._frames is not None
        frames, sent = self._frames, False
        while True:
            try:
                # What is already produced goes out without a cancel scope or a task switch per frame.
                data: bytes | None = frames.receive_nowait()
            except anyio.WouldBlock:
                data = await self._next(frames, sent)
            except anyio.EndOfStream:
                self._complete = True
                return
            if data is None:
                return
            if data:
                sent = True
                yield data

    async def _next(self, frames: MemoryObjectReceiveStream[bytes], sent: bool) -> bytes | None:
        """The next frame, a ping after a silent interval, b"" (wait again), or None at the end."""
        # Nothing may precede `message_start`, not even a ping. What was *sent* decides, not the translator's
        # state: the timeout can fire just as the first frame is produced.
        data: bytes | None = PING_FRAME if sent else b""
        with anyio.move_on_after(self._ping):
            try:
                data = await frames.receive()
            except anyio.EndOfStream:
                self._complete = True
                data = None
        return data


async def send_frames(out: MemoryObjectSendStream[bytes], data: bytes) -> None:
    """Into the buffer at once when it has room (no task switch per frame); otherwise wait for the client."""
    try:
        out.send_nowait(data)
    except anyio.WouldBlock:
        await out.send(data)


async def _drain(events: AsyncIterator[list[StreamEvent]], upstream: AsyncExitStack) -> None:
    """Read what follows the terminal event (normally just the end of the body), bounded in time, then release."""
    async with upstream:
        with anyio.move_on_after(DRAIN_SECONDS):
            try:
                async for _ in events:
                    pass
            except GatewayError:
                pass
