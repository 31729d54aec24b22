"""The SSE decoder's edge cases (one test each) and the frame encoder."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from messages_bridge.errors import OverloadedError
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.sse import EventTooLargeError, ServerSentEvent, SSEDecoder, frame
from tests.streamkit import chunked


def decode_all(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    return events + decoder.finish()


def test_one_event() -> None:
    assert decode_all(b"event: a\ndata: {}\n\n") == [ServerSentEvent("a", b"{}")]


def test_multibyte_character_split_across_chunks() -> None:
    data = 'event: t\ndata: {"x":"h\u00e9\u20ac\U0001f600"}\n\n'.encode()
    cut = data.index("\u20ac".encode()) + 1  # inside the 3-byte sequence
    events = decode_all(data[:cut], data[cut : cut + 1], data[cut + 1 :])
    assert [json.loads(e.data) for e in events] == [{"x": "h\u00e9\u20ac\U0001f600"}]


def test_line_split_inside_field_name() -> None:
    assert decode_all(b"eve", b"nt: a\nda", b"ta: 1\n", b"\n") == [ServerSentEvent("a", b"1")]


def test_crlf_and_cr_line_ends() -> None:
    assert decode_all(b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r") == [
        ServerSentEvent("a", b"1"),
        ServerSentEvent("b", b"2"),
    ]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    events = decode_all(b"event: a\r", b"\ndata: 1\r", b"\n\r", b"\n")
    assert events == [ServerSentEvent("a", b"1")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    assert decode_all(b": keep-alive\n\nretry: 5\nfoo: bar\nevent: a\n:mid\ndata: x\n\n") == [
        ServerSentEvent("a", b"x")
    ]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert decode_all(b'data: {\ndata: "a": 1\ndata:}\n\n') == [ServerSentEvent(None, b'{\n"a": 1\n}')]


def test_empty_data_line_and_blank_lines_without_data() -> None:
    assert decode_all(b"\n\nevent: lonely\n\ndata:\ndata:\n\n") == [ServerSentEvent(None, b"\n")]


def test_field_without_space_and_value_with_colon() -> None:
    assert decode_all(b"event:a\ndata:x: y\n\n") == [ServerSentEvent("a", b"x: y")]


def test_last_event_without_trailing_blank_line() -> None:
    assert decode_all(b"event: a\ndata: 1\n\nevent: b\ndata: 2") == [
        ServerSentEvent("a", b"1"),
        ServerSentEvent("b", b"2"),
    ]


def test_last_event_with_line_end_but_no_blank_line() -> None:
    assert decode_all(b"event: b\ndata: 2\n") == [ServerSentEvent("b", b"2")]


def test_id_is_remembered() -> None:
    events = decode_all(b"id: 7\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in events] == ["7", "7"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), max_size=30))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    data = 'event: x\r\ndata: {"t":"\u00e9\u6f22\U0001f600"}\r\n\r\n: c\n\nevent: y\rdata: a\rdata: b\r\r'.encode()
    assert decode_all(*chunked(data, cuts)) == decode_all(data)


def test_frame_encoding() -> None:
    assert frame(b"ping", b'{"type": "ping"}') == o.PING_FRAME
    encoded = o.encode_event(o.ContentBlockDelta(3, o.TextDelta("a\nb")))
    assert (
        encoded == b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,'
        b'"delta":{"type":"text_delta","text":"a\\nb"}}\n\n'
    )


def test_error_event_is_the_error_envelope_without_a_request_id() -> None:
    error = OverloadedError("Overloaded")
    event = o.ErrorEvent(o.ErrorDetail(error.error_type, error.message))
    expected = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert o.encode_event(event) == frame(b"error", expected)


# --- limits: linear cost, one bounded event --------------------------------------------------------------------------


def test_a_line_in_many_chunks_grows_one_buffer_in_place() -> None:
    """Linear cost, seen in bytes: each chunk without a line end is appended to one buffer grown in place (copying
    the line so far into a new one would hold it twice at that moment), and the line is copied out once, when it
    ends, and nothing of it is held after that."""
    decoder = SSEDecoder()
    chunks = [bytes([97 + i % 26]) * 1000 for i in range(2000)]
    line = len(b"data: ") + 1000 * len(chunks)
    assert decoder.feed(b"event: big\ndata: ") == []
    tracemalloc.start()
    try:
        for chunk in chunks:
            assert decoder.feed(chunk) == []
        held, peak = tracemalloc.get_traced_memory()
        events = decoder.feed(b"\n\n")
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert line <= held < 1.2 * line  # the line, held once (a growing buffer over-allocates by an eighth)
    assert peak < 1.2 * line  # never the line and a copy of it at once
    assert events == [ServerSentEvent("big", b"".join(chunks))]
    assert after < 1.1 * line  # the event's data alone: the buffer is gone


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=12), st.sampled_from(["line", "lines"]))
@example([4112], "line")  # the whole line but its end in one chunk: the unfinished line itself is over the limit
def test_an_event_over_the_limit_raises_whatever_the_chunking(cuts: list[int], shape: str) -> None:
    limit = 4096
    body = b"a" * (limit + 1) if shape == "line" else b"\ndata: ".join([b"a" * 99] * (limit // 100 + 1))
    data = b"event: x\ndata: " + body + b"\n\n"
    decoder = SSEDecoder(max_event_bytes=limit)
    with pytest.raises(EventTooLargeError):
        for chunk in chunked(data, cuts):
            decoder.feed(chunk)
    # Nothing of the oversized event is kept: the next event comes out alone, as if it were the first.
    assert decoder.feed(b"\ndata: next\n\n") == [ServerSentEvent(None, b"next")]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=12))
def test_events_under_the_limit_pass_whatever_the_chunking(cuts: list[int]) -> None:
    limit = 4096
    data = b"event: x\ndata: " + b"a" * (limit - 16) + b"\n\n" + b"data: " + b"b" * (limit - 16) + b"\n\n"
    decoder = SSEDecoder(max_event_bytes=limit)
    events = [e for chunk in chunked(data, cuts) for e in decoder.feed(chunk)] + decoder.finish()
    assert [len(e.data) for e in events] == [limit - 16, limit - 16]


RSS_SCRIPT = """
import gc, os
from messages_bridge.protocol.sse import EventTooLargeError, SSEDecoder

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

chunk = b"a" * 65536
base = peak = rss()
for _ in range(3):
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    decoder.feed(b"event: x\\ndata: ")
    try:
        for _ in range(2 * LIMIT // len(chunk)):
            decoder.feed(chunk)
            peak = max(peak, rss())
    except EventTooLargeError:
        pass
    else:
        raise SystemExit("the limit was not enforced")
    del decoder
    gc.collect()
print(rss() - base, peak - base)
"""


def test_an_oversized_line_costs_the_limit_once_and_memory_goes_back() -> None:
    """In a fresh process, three 64 MiB lines against a 32 MiB limit: the resident set peaks near the limit (not at
    the line's size, nor twice the limit) and is back near where it started afterwards (RSS in bytes, /proc)."""
    limit = 32 * 1024 * 1024
    script = RSS_SCRIPT.replace("LIMIT", str(limit))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    after, peak = (int(n) for n in run.stdout.split())
    assert limit // 2 < peak < limit * 3 // 2, peak  # the buffer up to the limit (measured), never the whole line
    assert after < 8 * 1024 * 1024, after
