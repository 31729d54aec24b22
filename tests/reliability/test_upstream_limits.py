"""Hostile upstream answers are bounded: compression bombs, oversized bodies and events, unasked encodings, redirects.

Each class of input is sent by a raw upstream on 127.0.0.1, as a JSON answer, as a stream and as an error body.
Memory is asserted in bytes with tracemalloc: the peak the gateway's process reached while handling the answer
(whose decoded size is 64× the limit) stays under a fixed ceiling, and what stays allocated afterwards is small.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from messages_bridge.upstream.body import SHARE_BYTES
from messages_bridge.upstream.content import PIECE_BYTES, ContentDecoder
from tests.reliability.faults import MESSAGE, ok_response, raw_upstream, response_head
from tests.reliability.test_faults import assert_error
from tests.reliability.test_stream_faults import assert_failed_stream, parse_sse, text_of, upstream_events

STREAM = {**MESSAGE, "stream": True}
LIMIT = 1024 * 1024  # the body and event limits in these tests
BOMB_BYTES = 64 * LIMIT  # what each bomb inflates to
PEAK_CEILING = 8 * LIMIT  # the most the process may allocate while refusing a bomb
IDLE_CEILING = LIMIT // 2  # what may stay allocated once the request is over
LIMITS = {"max_upstream_body_bytes": LIMIT, "max_upstream_event_bytes": LIMIT, "max_retry_wait": 0.01}
SSE_OPENING = b"event: response.output_text.delta\ndata: "  # one event whose data line never ends
JSON_OPENING = b'{"id": "'  # one JSON string that never ends


def _compressed(opening: bytes, size: int, wbits: int) -> bytes:
    """`opening` and `size` bytes of `a`, compressed in 1 MiB steps (the bomb is never whole in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [packer.compress(opening)]
    block = b"a" * LIMIT
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
}


@functools.cache
def bomb(opening: bytes, coding: str) -> bytes:
    """`opening` + 64 MiB, encoded as `content-encoding: coding` says (`gzip, gzip` = gzipped twice)."""
    codings = [c.strip() for c in coding.split(",")]
    first = {"gzip": 31, "x-gzip": 31, "deflate": 15, "raw-deflate": -15}[codings[0]]
    data = _compressed(opening, BOMB_BYTES, first)
    for extra in codings[1:]:
        data = ENCODERS[extra](data)
    return data


def encoded(data: bytes, coding: str) -> bytes:
    for name in (c.strip() for c in coding.split(",")):
        data = zlib.compress(data, 9, -15) if name == "raw-deflate" else ENCODERS[name](data)
    return data


def answering(
    body: bytes,
    *,
    status: int = 200,
    coding: str | None = None,
    sse: bool = False,
    heads: list[bytes] | None = None,
    length: bool = True,
) -> Callable[..., Any]:
    """A raw upstream: one answer per connection, `content-encoding: coding` (raw-deflate is sent as deflate)."""
    extra = b"connection: close\r\n"
    if coding:
        extra += b"content-encoding: " + coding.replace("raw-deflate", "deflate").encode() + b"\r\n"
    if length and not sse:
        extra += b"content-length: %d\r\n" % len(body)
    content_type = b"text/event-stream" if sse else b"application/json"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if heads is not None:
            heads.append(head.lower())
        length = next(
            (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
        )
        await reader.readexactly(length)
        writer.write(response_head(status, content_type=content_type, extra=extra))
        for start in range(0, len(body), 65536):
            writer.write(body[start : start + 65536])
            await writer.drain()
        writer.close()

    return handler


@contextmanager
def traced() -> Iterator[Callable[[], tuple[int, int]]]:
    """(bytes allocated now, peak) since the block began, over every thread of the process."""
    tracemalloc.start()
    try:
        yield tracemalloc.get_traced_memory
    finally:
        tracemalloc.stop()


async def bounded_reply(gateway: Any, body: dict[str, Any]) -> tuple[Any, int, int]:
    """The reply, the allocation peak while it was produced, and what was still allocated after it.

    "After" is after a garbage collection and a few turns of the loop: a kept error's traceback forms a cycle with
    the frames that raised it (their locals are one network read at most, never the oversized answer), and an
    upstream body left unread is let go when asyncio finalises the generators that were reading it.
    """
    with traced() as memory:
        reply = await gateway.post(body)
        await gateway.released()
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
        current, peak = memory()
    return reply, peak, current


# --- compression: decoded in bounded pieces, never inflated whole --------------------------------------------------

CODINGS = ["gzip", "x-gzip", "gzip, gzip", "deflate", "raw-deflate", "deflate, gzip"]
# Each bomb costs about a second (64 MiB inflated under tracemalloc): the quick loop sends one per shape, the whole
# suite every coding in every shape (tests/upstream/test_content.py decodes every coding's bomb in bounded pieces).
SLOW = pytest.mark.slow
QUICK_BOMBS = {("json", "gzip, gzip"), ("stream", "deflate"), ("error", "raw-deflate")}
BOMBS = [
    pytest.param(shape, coding, id=f"{shape}-{coding}", marks=[] if (shape, coding) in QUICK_BOMBS else [SLOW])
    for shape in ("json", "stream", "error")
    for coding in CODINGS
]


@pytest.mark.parametrize(("shape", "coding"), BOMBS)
async def test_compression_bomb_is_cut_at_the_limit(open_gateway: Any, coding: str, shape: str) -> None:
    """1 MiB-limited gateway, answers inflating to 64 MiB: JSON → 502, stream → in-band error, error body → cut."""
    opening = SSE_OPENING if shape == "stream" else JSON_OPENING
    status = 500 if shape == "error" else 200
    async with raw_upstream(
        answering(bomb(opening, coding), status=status, coding=coding, sse=shape == "stream")
    ) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, **LIMITS)
        reply, peak, current = await bounded_reply(gateway, STREAM if shape == "stream" else MESSAGE)
    if shape == "stream":
        assert_failed_stream(reply, "api_error")
    else:
        body = assert_error(reply, 502 if shape == "json" else 500, "api_error")
        assert "larger than" in body["error"]["message"] or shape == "error"
    assert peak < PEAK_CEILING, peak
    assert current < IDLE_CEILING, current


@pytest.mark.parametrize("coding", CODINGS)
async def test_compressed_answers_within_the_limit_are_decoded(open_gateway: Any, coding: str) -> None:
    """An upstream that compresses although asked not to still works, as JSON and as a stream."""
    heads: list[bytes] = []
    text = "compressed but honest " * 100
    json_body = encoded(json.dumps(ok_response(text)).encode(), coding)
    sse_body = encoded(b"".join(upstream_events(ok_response(text))), coding)
    async with (
        raw_upstream(answering(json_body, coding=coding, heads=heads)) as plain,
        raw_upstream(answering(sse_body, coding=coding, sse=True, heads=heads)) as streamed,
    ):
        reply = await (await open_gateway(openai_base_url=plain.base_url)).post()
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"][0]["text"] == text
        stream = await (await open_gateway(openai_base_url=streamed.base_url)).post(STREAM)
        frames = parse_sse(stream.text)
        assert frames[-1][0] == "message_stop" and text_of(frames) == text
    assert heads and all(b"\r\naccept-encoding: identity\r\n" in head for head in heads)


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip, gzip, gzip, gzip", "bz\u00e9"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_unasked_encodings_are_refused_before_the_first_byte(
    open_gateway: Any, coding: str, stream: bool
) -> None:
    async with raw_upstream(answering(b"\x28\xb5\x2f\xfd" * 64, coding=coding, sse=stream)) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        reply = await gateway.post(STREAM if stream else MESSAGE)
    body = assert_error(reply, 502, "api_error")
    assert "content-encoding" in body["error"]["message"]
    await gateway.released()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_corrupt_compression_is_an_api_error(open_gateway: Any, stream: bool) -> None:
    corrupt = gzip.compress(b"x" * 5000)[:20] + b"\xff" * 200
    async with raw_upstream(answering(corrupt, coding="gzip", sse=stream)) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url)
        reply = await gateway.post(STREAM if stream else MESSAGE)
    if stream:
        assert_failed_stream(reply, "api_error")
    else:
        assert_error(reply, 502, "api_error")
    await gateway.released()


# --- size: one event and one body are limited, whatever their framing ---------------------------------------------


def oversized(opening: bytes, shape: str) -> bytes:
    """4 MiB past `opening`: one endless line, many data lines of one event, or (JSON) one string."""
    if shape == "data_lines":
        return opening + b"a\n" + b"".join([b"data: " + b"a" * 1000 + b"\n"] * 4096)
    return opening + b"a" * (4 * LIMIT)


# Under tracemalloc each costs about a second: the quick loop keeps one framing of each (the whole suite runs all).
@pytest.mark.parametrize("shape", ["one_line", pytest.param("data_lines", marks=SLOW)])
async def test_oversized_stream_event_is_an_in_band_api_error(open_gateway: Any, shape: str) -> None:
    body = b"".join(upstream_events()[:3]) + oversized(SSE_OPENING, shape)
    async with raw_upstream(answering(body, sse=True)) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, **LIMITS)
        reply, peak, current = await bounded_reply(gateway, STREAM)
    frames = assert_failed_stream(reply, "api_error")
    assert "larger than" in frames[-1][1]["error"]["message"]
    assert peak < PEAK_CEILING // 2, peak
    assert current < IDLE_CEILING, current


@pytest.mark.parametrize(
    "declared", [pytest.param(True, id="content_length"), pytest.param(False, id="until_close", marks=SLOW)]
)
async def test_oversized_json_body_is_a_502(open_gateway: Any, declared: bool) -> None:
    async with raw_upstream(answering(oversized(JSON_OPENING, "one_line"), length=declared)) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, **LIMITS)
        reply, peak, current = await bounded_reply(gateway, MESSAGE)
    assert "larger than" in assert_error(reply, 502, "api_error")["error"]["message"]
    assert peak < PEAK_CEILING // 2, peak
    assert current < IDLE_CEILING, current


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_answers_just_under_the_limits_pass(open_gateway: Any, stream: bool) -> None:
    text = "b" * (LIMIT - 4096)  # the completed response event / JSON body carries the text once: under the limit
    # Deltas of 4 KiB, not 8 characters: the limit is on one event, and 130,000 deltas cost seconds of CPU.
    events = upstream_events(ok_response(text), chunk=4096)
    body = b"".join(events) if stream else json.dumps(ok_response(text)).encode()
    async with raw_upstream(answering(body, sse=stream)) as upstream:
        gateway = await open_gateway(openai_base_url=upstream.base_url, **LIMITS)
        reply = await gateway.post(STREAM if stream else MESSAGE)
    assert reply.status_code == 200
    got = text_of(parse_sse(reply.text)) if stream else reply.json()["content"][0]["text"]
    assert got == text


# --- redirects: an upstream fault, never followed --------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstream_redirect_is_a_502_api_error_and_not_followed(
    open_gateway: Any, status: int, stream: bool
) -> None:
    async with raw_upstream(answering(b"", sse=stream)) as target:
        location = f"location: {target.base_url}/responses\r\n".encode()

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response_head(status, content_type=b"text/html", extra=location + b"content-length: 0\r\n"))
            await writer.drain()

        async with raw_upstream(redirect) as upstream:
            gateway = await open_gateway(openai_base_url=upstream.base_url)
            reply = await gateway.post(STREAM if stream else MESSAGE)
        assert target.opened == 0
    body = assert_error(reply, 502, "api_error")
    assert f"HTTP {status}" in body["error"]["message"] and target.base_url not in reply.text
    assert reply.headers["x-should-retry"] == "false"
    assert upstream.opened == 1  # not retried
    await gateway.released()


# --- decoding shares the event loop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["json", "stream"])
async def test_decoding_a_bomb_hands_the_event_loop_on(
    open_gateway: Any, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """One read of compressed data decodes to many MiB: other tasks get the loop at least every SHARE_BYTES decoded.

    Measured in bytes, not time: a task that runs at every turn of the loop records how much was decoded since its
    previous turn; the largest such gap is the most the gateway decoded without letting anyone else run.
    """
    decoded = [0]
    feed = ContentDecoder.feed

    def counting(self: ContentDecoder, data: bytes) -> Iterator[bytes]:
        for piece in feed(self, data):
            decoded[0] += len(piece)
            yield piece

    monkeypatch.setattr(ContentDecoder, "feed", counting)
    gaps: list[int] = []
    seen = [0]

    def note_gap() -> None:
        gaps.append(decoded[0] - seen[0])
        seen[0] = decoded[0]

    async def turn_of_the_loop() -> None:
        while True:
            note_gap()
            await asyncio.sleep(0)

    opening = SSE_OPENING if shape == "stream" else JSON_OPENING
    async with raw_upstream(answering(bomb(opening, "gzip"), coding="gzip", sse=shape == "stream")) as upstream:
        limits = {"max_upstream_body_bytes": 16 * LIMIT, "max_upstream_event_bytes": 16 * LIMIT}
        gateway = await open_gateway(openai_base_url=upstream.base_url, **limits)
        ticker = asyncio.create_task(turn_of_the_loop())
        try:
            reply = await gateway.post(STREAM if shape == "stream" else MESSAGE)
        finally:
            ticker.cancel()
            note_gap()  # what was decoded after the ticker's last turn
    assert reply.status_code in (200, 502)
    assert decoded[0] >= 16 * LIMIT  # the limit was reached, so there was much to decode
    assert max(gaps) <= SHARE_BYTES + PIECE_BYTES, max(gaps)
