"""Hostile upstream answers: whatever JSON a 2xx upstream sends, both translators give a usable message or a typed
`GatewayError` (never another exception, which would be a 500 "unhandled exception"), and a stream keeps its
grammar. Messages that do come out carry unique well-formed tool ids and no negative usage."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.errors import GatewayError
from messages_bridge.protocol import responses as r
from messages_bridge.protocol.responses_stream import DECODERS, decode_event
from messages_bridge.protocol.sse import ServerSentEvent
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.stream import StreamTranslator
from tests.streamkit import check_grammar, fold, to_wire

JSON = Any
EXAMPLES = int(os.environ.get("UPSTREAM_FUZZ_EXAMPLES", "120"))  # derandomized: set it higher to search further
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEYS = [
    "type",
    "id",
    "call_id",
    "name",
    "arguments",
    "content",
    "summary",
    "encrypted_content",
    "text",
    "refusal",
    "status",
    "output",
    "usage",
    "item",
    "item_id",
    "output_index",
    "content_index",
    "summary_index",
    "delta",
    "part",
    "response",
    "error",
    "code",
    "message",
    "input_tokens",
    "output_tokens",
    "obfuscation",
]
TYPES = [
    "message",
    "function_call",
    "reasoning",
    "output_text",
    "refusal",
    "reasoning_text",
    "summary_text",
    "web_search_call",
    "",
    "completed",
    "in_progress",
    *DECODERS,
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from(TYPES),
    st.text(max_size=6),
    st.floats(allow_nan=False),
)
VALUES: st.SearchStrategy[JSON] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=6,
)


@st.composite
def items(draw: st.DrawFn) -> JSON:
    """A plausible output item with fields replaced by hostile values, or any JSON at all."""
    base: dict[str, JSON] = draw(
        st.sampled_from(
            [
                {"type": "message", "id": "m", "content": [{"type": "output_text", "text": "hi"}]},
                {"type": "function_call", "id": "f", "call_id": "c", "name": "n", "arguments": '{"a":1}'},
                {
                    "type": "reasoning",
                    "id": "r",
                    "summary": [{"type": "summary_text", "text": "s"}],
                    "encrypted_content": "e",
                },
                {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "raw"}]},
            ]
        )
    )
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        base = {**base, key: draw(VALUES)}
    return base if draw(st.integers(0, 4)) else draw(VALUES)


def _check_message(message: JSON) -> None:
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert len(set(ids)) == len(ids) and all(TOOL_ID.fullmatch(i) for i in ids)
    assert all(v >= 0 for v in message["usage"].values() if isinstance(v, int))


@FUZZ
@given(
    st.lists(items(), max_size=4),
    st.sampled_from(["completed", "incomplete", "in_progress", None, "x"]),
    VALUES,
    st.booleans(),
)
def test_any_non_streaming_answer_is_a_message_or_a_typed_error(
    output: JSON, status: JSON, usage: JSON, thinking: bool
) -> None:
    body = json.dumps({"id": "resp_f", "status": status, "output": output, "usage": usage})
    try:
        response = r.RESPONSE_DECODER.decode(body)
    except msgspec.DecodeError:
        return  # the client turns this into a 502 `api_error` (tests/app/test_upstream_answers.py)
    try:
        message = to_anthropic_message(response, ReplyContext(thinking_requested=thinking), model="m")
    except GatewayError as exc:
        assert (exc.error_type == "api_error" and exc.status_code in (500, 502)) or exc.status_code < 500
        return
    _check_message(json.loads(json.dumps(message)))


@st.composite
def events(draw: st.DrawFn) -> tuple[str, JSON]:
    """(SSE event name, payload): a known event with hostile fields, or a well-formed one around hostile items."""
    name = draw(st.sampled_from(sorted(DECODERS)))
    event: dict[str, JSON] = {
        "type": name,
        "output_index": draw(st.integers(-2, 3)),
        "content_index": 0,
        "summary_index": 0,
        "delta": draw(st.text(max_size=4)),
        "item": draw(items()),
        "part": {"type": draw(st.sampled_from(TYPES)), "text": "t"},
        "response": {
            "id": "resp_f",
            "status": draw(st.sampled_from(["completed", None, "x"])),
            "usage": draw(VALUES),
            "output": [],
        },
    }
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
        event[key] = draw(VALUES)
    return name, event


STREAMS = st.lists(events(), max_size=10)
STOPS = st.lists(st.text(min_size=1, max_size=2), max_size=1)


@pytest.mark.slow
@FUZZ
@given(STREAMS, st.booleans(), STOPS)
def test_any_stream_is_a_message_or_an_error_event_in_grammar(stream: JSON, thinking: bool, stops: list[str]) -> None:
    check_stream(stream, thinking, stops)


@settings(FUZZ, max_examples=20)
@given(STREAMS, st.booleans(), STOPS)
def test_any_stream_is_a_message_or_an_error_event_in_grammar_quick(
    stream: JSON, thinking: bool, stops: list[str]
) -> None:
    """The search above, short, for the quick loop (the whole suite runs both)."""
    check_stream(stream, thinking, stops)


def check_stream(stream: JSON, thinking: bool, stops: list[str]) -> None:
    translator = StreamTranslator(
        ReplyContext(thinking_requested=thinking, stop_sequences=tuple(stops)), model="m", input_tokens=3
    )
    out = []
    for name, event in stream:
        try:
            typed = decode_event(ServerSentEvent(name, json.dumps(event).encode()))
        except msgspec.DecodeError:
            out += translator.fail(GatewayError("malformed"))  # what the client does with it (an in-band error)
            break
        if typed is not None:
            out += translator.feed(typed)  # raises nothing but GatewayError inside: it would escape here
    out += translator.finish()
    wire = to_wire(out)
    check_grammar(wire)
    if wire[-1][0] == "message_stop":
        _check_message(fold(wire))
