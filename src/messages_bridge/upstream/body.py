"""Reading an upstream answer's body: decoded, and never more of it held than a limit.

Raw bytes only (`aiter_raw`): httpx's own reading (`aread`, `aiter_bytes`, `.content`) follows `content-encoding`
with no limit at all, so no upstream response is read that way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from messages_bridge.errors import UpstreamProtocolError, from_transport_error
from messages_bridge.upstream.content import ContentDecoder

ERROR_BODY_BYTES = 1024 * 1024  # an upstream error body is read this far (its message is all we use), the rest cut
_ERROR_BODY = "messages_bridge.error_body"  # where a read error body is kept on its response (read once, used twice)
SHARE_BYTES = 1024 * 1024  # decoded bytes after which the event loop is handed on (see `Pacer`)


class Pacer:
    """Hands the event loop on after every `SHARE_BYTES` decoded.

    One network read of a compressed body can decode to a whole limit (64 MiB): without a pause, every other
    request — and `/healthz` — would wait for it.
    """

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = 0

    async def step(self, size: int) -> None:
        self._since += size
        if self._since >= SHARE_BYTES:
            self._since = 0
            await asyncio.sleep(0)


def raw_body(response: httpx.Response) -> tuple[AsyncIterator[bytes], ContentDecoder]:
    """The body's bytes as they arrive, and the decoder that undoes their `content-encoding`.

    A response already read (in-process transports such as `MockTransport` hand them over so) is its content, in
    memory and decoded already.
    """
    if response.is_stream_consumed:
        return _once(response.content), ContentDecoder(None)
    return response.aiter_raw(), ContentDecoder(response.headers.get("content-encoding"))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_body(response: httpx.Response, limit: int, *, cut: bool = False) -> bytearray:
    """The decoded body, never more than `limit` bytes of it held: past it `UpstreamProtocolError` (or, `cut`, cut)."""
    chunks, decoder = raw_body(response)
    declared = response.headers.get("content-length", "")
    if not cut and decoder.identity and declared.isdigit() and int(declared) > limit:
        raise UpstreamProtocolError(f"The upstream's answer is larger than {limit} bytes")  # known before reading it
    body = bytearray()
    pacer = Pacer()
    try:
        async for raw in chunks:
            for piece in decoder.feed(raw):
                if _append(body, piece, limit, cut=cut):
                    return body
                await pacer.step(len(piece))
        for piece in decoder.flush():
            if _append(body, piece, limit, cut=cut):
                return body
    except httpx.HTTPError as exc:
        raise from_transport_error(exc) from exc
    return body


def _append(body: bytearray, piece: bytes, limit: int, *, cut: bool) -> bool:
    """Add one decoded piece (at most 64 KiB, or one network read); True once a `cut` body is full."""
    body += piece
    if len(body) <= limit:
        return False
    if not cut:
        body.clear()  # the traceback keeps this frame (and `body`) alive as long as the error is kept
        raise UpstreamProtocolError(f"The upstream's answer is larger than {limit} bytes")
    del body[limit:]
    return True


async def error_body(response: httpx.Response) -> bytes:
    """The first `ERROR_BODY_BYTES` of an error answer, decoded; read once (the retry logic and the error mapping
    both look at it). Undecodable content is empty (the status still maps); a transport failure raises, mapped."""
    cached = response.extensions.get(_ERROR_BODY)
    if isinstance(cached, bytes):
        return cached
    try:
        content = bytes(await read_body(response, ERROR_BODY_BYTES, cut=True))
    except UpstreamProtocolError:
        content = b""
    response.extensions[_ERROR_BODY] = content
    return content
