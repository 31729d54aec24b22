"""Routes ↔ threads: open a turn for a request body, store its reply when it is complete, free it otherwise.

A streamed reply is stored once its `message_stop` is produced, just before that frame is sent; an in-band `error`,
a refusal, or a stream that ends early store nothing. Either way the lease is freed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping

import anyio
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from messages_bridge.app.state import GatewayState
from messages_bridge.app.tenant import tenant_of
from messages_bridge.observability.record import RequestRecord
from messages_bridge.protocol import anthropic as a
from messages_bridge.team.identity import Identity
from messages_bridge.threads.reply import StreamCapture, stored_reply
from messages_bridge.threads.service import ThreadTurn


async def open_turn(
    state: GatewayState,
    body: bytes,
    headers: Mapping[str, str],
    record: RequestRecord,
    identity: Identity | None = None,
) -> ThreadTurn | None:
    """The thread turn of an authenticated request body that names a `thread` (None for `thread: null`)."""
    return await state.threads.open(body, tenant_of(headers, state.keys, identity), record)


async def abandon(turn: ThreadTurn) -> None:
    """Free the turn's head even while the request is being cancelled (a client that went away)."""
    with anyio.CancelScope(shield=True):
        await turn.abandon()


async def complete_message(turn: ThreadTurn, message: a.Message) -> a.Message:
    """A non-streamed reply: renamed to the turn's id, stored unless it is a refusal."""
    message = {**message, "id": turn.reply_id}
    if message["stop_reason"] == "refusal":
        await turn.abandon()
    else:
        await turn.complete(stored_reply(message))
    return message


async def capture_response(turn: ThreadTurn, response: Response) -> Response:
    """A reply already rendered: a stream as it goes out, a complete SSE body (a static stream) at once."""
    if isinstance(response, StreamingResponse):
        return capture_stream(turn, response)
    capture = StreamCapture(turn.reply_id)
    body = capture.feed(bytes(response.body))
    if capture.storable:
        await turn.complete(capture.content())
    else:
        await turn.abandon()
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Response(body, status_code=response.status_code, headers=headers, media_type=response.media_type)


def capture_stream(turn: ThreadTurn, response: Response) -> Response:
    """Follow a streamed reply's frames: rename it, and store it once the last frame went out complete."""
    assert isinstance(response, StreamingResponse)
    capture = StreamCapture(turn.reply_id)
    response.body_iterator = _captured(turn, capture, response.body_iterator)
    first = response.background

    async def settle() -> None:
        if first is not None:
            await first()
        await abandon(turn)  # a no-op once the body stored or freed it; a body never iterated frees it here

    response.background = BackgroundTask(settle)
    return response


async def _captured(
    turn: ThreadTurn, capture: StreamCapture, body: AsyncIterable[str | bytes | memoryview]
) -> AsyncIterator[bytes]:
    """The body, renamed; the reply is stored just before the frame holding `message_stop` goes out.

    Before, not after: a client that reads `message_stop` may continue at once, and must find its reply stored. A
    client that never receives it starts a new thread itself (the SDKs do after any stream cut short), so a reply
    stored but not delivered costs nothing.
    """
    try:
        async for chunk in body:
            out = capture.feed(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
            if capture.storable and not turn.settled:
                with anyio.CancelScope(shield=True):
                    await turn.complete(capture.content())
            yield out
    finally:
        await abandon(turn)  # a no-op once stored; otherwise the stream failed, was refused or was cut
