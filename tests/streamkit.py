"""Helpers shared by the streaming tests: run the translator over SSE bytes, parse, check the grammar, fold."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

from messages_bridge.protocol.anthropic_stream import StreamEvent, encode_events
from messages_bridge.protocol.responses_stream import decode_event
from messages_bridge.protocol.sse import SSEDecoder
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.stream import StreamTranslator

Event = tuple[str, dict[str, Any]]


def parse_sse(data: bytes) -> list[Event]:
    """(event name, JSON) pairs; asserts every frame has its `event:` line and a matching `type`."""
    decoder = SSEDecoder()
    out: list[Event] = []
    for sse in [*decoder.feed(data), *decoder.finish()]:
        assert sse.event is not None, "every Anthropic frame needs an event: line"
        payload = json.loads(sse.data)
        assert payload["type"] == sse.event
        out.append((sse.event, payload))
    return out


def chunked(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` split at the given offsets (sorted, deduplicated, in range)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def translate(
    chunks: Iterable[bytes], t: ReplyContext, *, model: str = "claude-sonnet-4-5", input_tokens: int = 11
) -> tuple[list[StreamEvent], StreamTranslator]:
    """Upstream SSE chunks → Anthropic events, exactly as the stream endpoint drives the translator."""
    translator = StreamTranslator(t, model=model, input_tokens=input_tokens)
    decoder = SSEDecoder()
    out: list[StreamEvent] = []
    for chunk in chunks:
        for sse in decoder.feed(chunk):
            if (event := decode_event(sse)) is not None:
                out.extend(translator.feed(event))
    for sse in decoder.finish():
        if (event := decode_event(sse)) is not None:
            out.extend(translator.feed(event))
    out.extend(translator.finish())
    return out, translator


def to_wire(events: list[StreamEvent]) -> list[Event]:
    return parse_sse(encode_events(events)) if events else []


def check_grammar(events: list[Event]) -> None:
    """Anthropic's stream grammar: one message_start first; blocks sequential, contiguous; typed deltas; one ending."""
    names = [name for name, _ in events]
    if names and names[0] == "error":
        assert names == ["error"]
        return
    assert names[0] == "message_start" and names.count("message_start") == 1
    open_type: str | None = None
    next_index = 0
    for position, (name, payload) in enumerate(events[1:], start=1):
        if name == "content_block_start":
            assert open_type is None, "blocks never interleave"
            assert payload["index"] == next_index
            open_type = payload["content_block"]["type"]
        elif name == "content_block_delta":
            assert open_type is not None and payload["index"] == next_index
            allowed = {
                "text": {"text_delta", "citations_delta"},
                "thinking": {"thinking_delta", "signature_delta"},
                "tool_use": {"input_json_delta"},
                "server_tool_use": {"input_json_delta"},
                "web_search_tool_result": set(),
            }[open_type]
            assert payload["delta"]["type"] in allowed
        elif name == "content_block_stop":
            assert open_type is not None and payload["index"] == next_index
            open_type, next_index = None, next_index + 1
        elif name == "message_delta":
            assert open_type is None and payload["delta"]["stop_reason"] is not None
            assert names[position + 1 :] == ["message_stop"]
            return
        elif name == "error":
            assert position == len(events) - 1, "nothing follows an error"
            return
        else:
            raise AssertionError(f"unexpected event {name}")
    raise AssertionError("stream ended without message_stop or error")


def fold(events: list[Event]) -> dict[str, Any]:
    """The final message a client accumulates (usage: the cumulative message_delta usage replaces the start's)."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, payload in events:
        if name == "message_start":
            message = json.loads(json.dumps(payload["message"]))
        elif name == "content_block_start":
            message["content"].append(dict(payload["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][payload["index"]], payload["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
            else:
                partial[payload["index"]] = partial.get(payload["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and payload["index"] in partial:
            message["content"][payload["index"]]["input"] = json.loads(partial[payload["index"]])
        elif name == "message_delta":
            message.update(payload["delta"])
            message["usage"] = payload["usage"]
    return message
