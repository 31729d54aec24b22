"""The SSE decoder's edge cases (one test each) and the frame encoder."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from messages_bridge.errors import OverloadedError
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol.sse import ServerSentEvent, SSEDecoder, frame
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
        ServerSentEvent("a", b"1"), ServerSentEvent("b", b"2")]  # fmt: skip


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
    assert encoded == b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,' \
                      b'"delta":{"type":"text_delta","text":"a\\nb"}}\n\n'  # fmt: skip


def test_error_event_is_the_error_envelope_without_a_request_id() -> None:
    error = OverloadedError("Overloaded")
    event = o.ErrorEvent(o.ErrorDetail(error.error_type, error.message))
    expected = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert o.encode_event(event) == frame(b"error", expected)
