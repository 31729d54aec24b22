"""Requests whose web search the gateway answers itself: the gateway-run loop, or `unavailable` when search is off.

Both stream their blocks as they exist (`server_tool_use` before its search runs, the result when it is back),
and both report search failures in-band: HTTP 200 with a `web_search_tool_result_error` block and a text saying
why. Claude Code turns an HTTP error into a useless `API Error: …` search result, so none is ever sent for a
search; upstream failures before the first byte still map to the usual JSON errors.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from asgi_correlation_id import correlation_id
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from messages_bridge.app.relay import upstream_error
from messages_bridge.app.state import GatewayState
from messages_bridge.app.streaming import HEADERS, QUEUE_WRITES, message_stream, send_frames
from messages_bridge.errors import ApiError, GatewayError
from messages_bridge.observability.record import RequestRecord
from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.anthropic_stream import PING_FRAME, encode_events
from messages_bridge.translate.request import Translation
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import ToolSet
from messages_bridge.translate.usage import empty_usage
from messages_bridge.translate.websearch import error, server_id, server_tool_use
from messages_bridge.upstream.client import UpstreamHTTPError
from messages_bridge.websearch.loop import GatewaySearch, SearchStats
from messages_bridge.websearch.streamed import SendEvents, StreamedSearch


def answered_by_gateway(req: a.MessagesRequest, t: Translation) -> bool:
    """Whether the gateway serves this request's web search itself (loop or `unavailable`)."""
    reply = t.reply
    if reply.web_search is None or reply.web_search_mode == "hosted":
        return False
    return reply.web_search_mode == "gateway" or _forced(req)


def _forced(req: a.MessagesRequest) -> bool:
    choice = req.tool_choice
    return isinstance(choice, a.ToolChoiceTool) and choice.name == "web_search"


def off_reason(state: GatewayState) -> str:
    if state.router.web_search.mode == "off":
        return "web search is turned off on this gateway"
    return "this gateway's upstream has no hosted web search and no search backend is configured"


async def search_message(
    state: GatewayState, req: a.MessagesRequest, t: Translation, record: RequestRecord
) -> a.Message | Response:
    """The answer to a request whose search the gateway runs: a Message, or a streaming Response.

    The facts of the upstream rounds and the searches reach `record` once, when the answer is over.
    """
    facts = UpstreamFacts(model=t.body["model"])
    record.web_search_mode = t.reply.web_search_mode
    if t.reply.web_search_mode != "gateway":
        message = unavailable_message(req, t.tools, off_reason(state))
        facts.web_search_errors = 1
        record.apply(facts)
        return message_stream(message) if req.stream else message
    config = state.router.web_search
    runner = GatewaySearch(
        state.client,
        state.search_backend,
        t.reply.web_search,  # type: ignore[arg-type]
        config.time_budget,
        results=config.backend.results if config.backend is not None else 8,
        request_id=correlation_id.get(),
        facts=facts,
    )
    if req.stream:
        return SearchStream(state, req, t, runner, facts, record)
    facts.started = time.perf_counter()
    try:
        message = await runner.run(t.body, t.reply, model=req.model)
        facts.replied(message["usage"], message["stop_reason"])
        return message
    except UpstreamHTTPError as exc:
        raise upstream_error(exc, req, t.tools, state.settings.context_window, facts) from exc
    finally:
        _searched(facts, runner.stats)
        record.apply(facts)


def _searched(facts: UpstreamFacts, stats: SearchStats) -> None:
    """The loop is over: its end, and what the searches cost."""
    facts.done = time.perf_counter()
    facts.web_searches = stats.searches
    facts.web_search_errors += stats.errors
    facts.web_search_seconds += stats.backend_seconds


def unavailable_message(req: a.MessagesRequest, tools: ToolSet, reason: str) -> a.Message:
    """An in-band `unavailable` answer: the search block, its error, and a text saying why."""
    block_id = server_id("off_" + secrets.token_hex(12))
    text = f"Web search is unavailable: {reason}."
    usage = empty_usage(input_tokens=estimate_input_tokens(req, tools))
    usage["server_tool_use"] = {"web_search_requests": 0}
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [
            server_tool_use(block_id, None),
            {"type": "web_search_tool_result", "tool_use_id": block_id, "content": error("unavailable")},
            {"type": "text", "text": text},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


# ---- streaming ----------------------------------------------------------------------------------


class SearchStream(StreamingResponse):
    """The streamed loop: the loop and the body in one task group over a bounded memory stream, one `finally`.

    Nothing is sent before the loop's first event: a failure before it (an upstream error on the first round)
    is raised from here, before the response starts, so the app's handlers answer it as JSON.
    """

    def __init__(
        self,
        state: GatewayState,
        req: a.MessagesRequest,
        t: Translation,
        runner: GatewaySearch,
        facts: UpstreamFacts,
        record: RequestRecord,
    ) -> None:
        super().__init__(self._body(), media_type="text/event-stream", headers=HEADERS)
        self._state = state
        self._req = req
        self._t = t
        self._runner = runner
        self._facts = facts
        self._record = record
        self._frames: MemoryObjectReceiveStream[bytes] | None = None
        self._first = anyio.Event()  # the first event is produced, or the loop ended before one
        self._early: GatewayError | None = None  # the failure that came before any event
        self._complete = False  # the body sent the last frame

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        produced, self._frames = anyio.create_memory_object_stream[bytes](QUEUE_WRITES)
        failure: Exception | None = None
        responding = False
        self._facts.started = time.perf_counter()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._produce, produced)
                await self._first.wait()
                if self._early is None:
                    responding = True
                    try:
                        await super().__call__(scope, receive, send)
                    except Exception as exc:  # noqa: BLE001 - re-raised below, not wrapped in an ExceptionGroup
                        failure = exc
                group.cancel_scope.cancel()  # the body is over: a loop still running has nobody to write to
        finally:
            produced.close()
            self._frames.close()
            facts = self._facts
            facts.cut = not self._complete and self._early is None
            _searched(facts, self._runner.stats)
            self._record.apply(facts)
            if not responding and self.background is not None:
                # No response (a failure before the first event, or the client left): what the response would
                # have run at its end still runs (a thread turn is freed), even while being cancelled.
                with anyio.CancelScope(shield=True):
                    await self.background()
        if self._early is not None:
            raise self._early
        if failure is not None:
            raise failure

    async def _produce(self, out: MemoryObjectSendStream[bytes]) -> None:
        req, t, facts = self._req, self._t, self._facts

        async def send(events: list[o.StreamEvent]) -> None:
            if not self._first.is_set():
                facts.first_token = time.perf_counter()
                self._first.set()
            for event in events:
                if isinstance(event, o.ErrorEvent):  # it may quote upstream text: no configured secret leaves
                    event.error.message = self._state.scrub(event.error.message)
            await send_frames(out, encode_events(events))

        streamed = StreamedSearch(self._runner, send, estimate_input_tokens(req, t.tools))
        with out:  # closing it ends the body
            try:
                await streamed.run(t.body, t.reply, model=req.model)
                if streamed.usage is not None:
                    facts.replied(streamed.usage, streamed.stop_reason)
            except UpstreamHTTPError as exc:
                await self._fail(send, upstream_error(exc, req, t.tools, self._state.settings.context_window, facts))
            except GatewayError as exc:
                await self._fail(send, exc)
            except Exception:  # noqa: BLE001 - a bug must still end the stream with an error event
                await self._fail(send, ApiError("Internal server error"))
            finally:
                self._first.set()

    async def _fail(self, send: SendEvents, exc: GatewayError) -> None:
        if not self._first.is_set():
            self._early = exc  # nothing sent yet: the app answers with the JSON error
            return
        self._facts.stream_error_type = exc.error_type
        await send([o.ErrorEvent(o.ErrorDetail(exc.error_type, exc.message))])

    async def _body(self) -> AsyncIterator[bytes]:
        """Each batch of frames as it is produced, `ping` while a search or an upstream round is in progress."""
        assert self._frames is not None
        frames = self._frames
        while True:
            data = PING_FRAME
            with anyio.move_on_after(self._state.settings.ping_interval):
                try:
                    data = await frames.receive()
                except anyio.EndOfStream:
                    self._complete = True
                    return
            yield data
