"""Requests whose web search the gateway answers itself: the gateway-run loop, or `unavailable` when search is off.

Both stream their blocks as they exist (`server_tool_use` before its search runs, the result when it is back),
and both report search failures in-band: HTTP 200 with a `web_search_tool_result_error` block and a text saying
why. Claude Code turns an HTTP error into a useless `API Error: …` search result, so none is ever sent for a
search; upstream failures before the first byte still map to the usual JSON errors.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import msgspec
from asgi_correlation_id import correlation_id
from starlette.responses import Response, StreamingResponse

from messages_bridge.app.relay import upstream_error
from messages_bridge.app.state import GatewayState
from messages_bridge.app.streaming import HEADERS
from messages_bridge.errors import ApiError, GatewayError
from messages_bridge.observability.record import RequestRecord, current
from messages_bridge.observability.upstream import note_usage
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.anthropic_stream import PING_FRAME, encode_events
from messages_bridge.translate.blocks import BlockEvents
from messages_bridge.translate.request import Translation
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import ToolSet
from messages_bridge.translate.usage import empty_usage
from messages_bridge.translate.websearch import error, server_id, server_tool_use
from messages_bridge.upstream.client import UpstreamHTTPError
from messages_bridge.websearch.loop import GatewaySearch
from messages_bridge.websearch.streamed import StreamedSearch

_ENCODER = msgspec.json.Encoder()
QUEUE_WRITES = 64


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


async def search_message(state: GatewayState, req: a.MessagesRequest, t: Translation) -> a.Message | Response:
    """The answer to a request whose search the gateway runs: a Message, or a streaming Response."""
    record = current()
    record.upstream_model = t.body["model"]
    record.web_search_mode = t.reply.web_search_mode
    if t.reply.web_search_mode != "gateway":
        message = unavailable_message(req, t.tools, off_reason(state))
        record.web_search_errors += 1
        return _stream_static(message) if req.stream else message
    config = state.router.web_search
    runner = GatewaySearch(
        state.client,
        state.search_backend,
        t.reply.web_search,  # type: ignore[arg-type]
        config.time_budget,
        results=config.backend.results if config.backend is not None else 8,
        request_id=correlation_id.get(),
    )
    if req.stream:
        return await _stream_loop(state, req, t, runner, record)
    record.upstream_started = time.perf_counter()
    try:
        message = await runner.run(t.body, t.reply, model=req.model)
    except UpstreamHTTPError as exc:
        raise upstream_error(exc, req, t.tools, state.settings.context_window, record) from exc
    finally:
        _note(record, runner)
    note_usage(record, message["usage"], message["stop_reason"])
    return message


def _note(record: RequestRecord, runner: GatewaySearch) -> None:
    record.upstream_done = time.perf_counter()
    stats = runner.stats
    record.web_searches = max(record.web_searches, stats.searches)
    record.web_search_errors += stats.errors
    record.web_search_ms += stats.backend_seconds * 1000


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


def _start_event(message: a.Message) -> o.MessageStart:
    usage = empty_usage(input_tokens=message["usage"]["input_tokens"])
    return o.MessageStart({**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage})


def _end_events(message: a.Message) -> list[o.StreamEvent]:
    stop = message["stop_reason"] or "end_turn"
    return [o.MessageDelta(o.MessageDeltaBody(stop, message["stop_sequence"]), message["usage"]), o.MessageStop()]


def _stream_static(message: a.Message) -> Response:
    events: list[o.StreamEvent] = [_start_event(message), *BlockEvents().events(message["content"])]
    return Response(encode_events([*events, *_end_events(message)]), media_type="text/event-stream", headers=HEADERS)


async def _stream_loop(
    state: GatewayState, req: a.MessagesRequest, t: Translation, runner: GatewaySearch, record: RequestRecord
) -> Response:
    """Run the streamed loop in a task; the response starts with its first event (an upstream error before → JSON)."""
    record.stream = True
    record.upstream_started = time.perf_counter()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_WRITES)
    started = asyncio.Event()

    async def send(events: list[o.StreamEvent]) -> None:
        if not started.is_set():
            started.set()
            record.first_token = time.perf_counter()
        for event in events:
            if isinstance(event, o.ErrorEvent):  # it may quote upstream text: no configured secret leaves
                event.error.message = state.scrub(event.error.message)
        await queue.put(encode_events(events))

    streamed = StreamedSearch(runner, send, estimate_input_tokens(req, t.tools))

    async def fail(exc: GatewayError) -> None:
        record.error_type = exc.error_type
        if not started.is_set():
            raise exc  # nothing sent yet: the route answers with the JSON error
        await send([o.ErrorEvent(o.ErrorDetail(exc.error_type, exc.message))])

    async def produce() -> None:
        try:
            await streamed.run(t.body, t.reply, model=req.model)
            if streamed.usage is not None:
                note_usage(record, streamed.usage, streamed.stop_reason)
        except UpstreamHTTPError as exc:
            await fail(upstream_error(exc, req, t.tools, state.settings.context_window, record))
        except GatewayError as exc:
            await fail(exc)
        except Exception:  # noqa: BLE001 - a bug must still end the stream with an error event
            await fail(ApiError("Internal server error"))
        finally:
            _note(record, runner)
            await queue.put(None)

    task = asyncio.create_task(produce())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done() and not started.is_set() and (exc := task.exception()) is not None:
        raise exc
    return StreamingResponse(
        _body(queue, task, state.settings.ping_interval, record), media_type="text/event-stream", headers=HEADERS
    )


async def _body(
    queue: asyncio.Queue[bytes | None], task: asyncio.Task[None], ping: float, record: RequestRecord
) -> AsyncIterator[bytes]:
    finished = False
    try:
        while True:
            try:
                async with asyncio.timeout(ping):
                    data = await queue.get()
            except TimeoutError:
                data = PING_FRAME  # a search or an upstream round in progress
            if data is None:
                finished = True
                return
            yield data
    finally:
        if not finished:
            record.disconnected = True
            task.cancel()
