"""Anthropic stream events (what the gateway sends on `stream: true`), encoded once into SSE frames.

msgspec Structs tagged on `type`: the tag is also the SSE event name, so `encode_event` writes
`event: <type>\\ndata: <json>\\n\\n` from a prefix computed once per class and a single JSON encode.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

from messages_bridge.protocol import anthropic as a

PING_FRAME = b'event: ping\ndata: {"type": "ping"}\n\n'


class _Event(Struct, tag_field="type"):
    FRAME: ClassVar[bytes] = b""  # `event: <tag>\ndata: `, set below once the subclasses exist


# ---- content block shells (content_block_start) and deltas -----------------------------------


class TextShell(Struct, tag_field="type", tag="text"):
    text: str = ""


class ThinkingShell(Struct, tag_field="type", tag="thinking"):
    thinking: str = ""
    signature: str = ""


class ToolUseShell(Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, object] = msgspec.field(default_factory=dict)


class ServerToolUseShell(Struct, tag_field="type", tag="server_tool_use"):
    id: str
    name: str
    input: dict[str, object] = msgspec.field(default_factory=dict)


class WebSearchResultShell(Struct, tag_field="type", tag="web_search_tool_result"):
    """Arrives complete in `content_block_start` (no deltas), like the real API's result blocks."""

    tool_use_id: str
    content: list[a.WebSearchResult] | a.WebSearchError


BlockShell = TextShell | ThinkingShell | ToolUseShell | ServerToolUseShell | WebSearchResultShell


class TextDelta(Struct, tag_field="type", tag="text_delta"):
    text: str


class ThinkingDelta(Struct, tag_field="type", tag="thinking_delta"):
    thinking: str


class SignatureDelta(Struct, tag_field="type", tag="signature_delta"):
    signature: str


class InputJsonDelta(Struct, tag_field="type", tag="input_json_delta"):
    partial_json: str


class CitationsDelta(Struct, tag_field="type", tag="citations_delta"):
    citation: a.WebSearchCitation


Delta = TextDelta | ThinkingDelta | SignatureDelta | InputJsonDelta | CitationsDelta


# ---- events ---------------------------------------------------------------------------------


class MessageStart(_Event, tag="message_start"):
    message: a.Message


class ContentBlockStart(_Event, tag="content_block_start"):
    index: int
    content_block: BlockShell


class ContentBlockDelta(_Event, tag="content_block_delta"):
    index: int
    delta: Delta


class ContentBlockStop(_Event, tag="content_block_stop"):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: a.StopReason
    stop_sequence: str | None
    stop_details: a.StopDetails | UnsetType = UNSET


class MessageDelta(_Event, tag="message_delta"):
    delta: MessageDeltaBody
    usage: a.Usage


class MessageStop(_Event, tag="message_stop"):
    pass


class ErrorDetail(Struct):
    type: str
    message: str


class ErrorEvent(_Event, tag="error"):
    """The in-stream error: the error envelope without `request_id` (the real API sends none in-band)."""

    error: ErrorDetail


_EVENTS = (MessageStart, ContentBlockStart, ContentBlockDelta, ContentBlockStop, MessageDelta, MessageStop, ErrorEvent)
StreamEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | ErrorEvent
)

for _cls in _EVENTS:
    _cls.FRAME = b"event: " + str(_cls.__struct_config__.tag).encode() + b"\ndata: "

_ENCODER = msgspec.json.Encoder()


def encode_event(event: StreamEvent) -> bytes:
    """One event as its SSE frame."""
    return event.FRAME + _ENCODER.encode(event) + b"\n\n"


def encode_events(events: list[StreamEvent]) -> bytes:
    """Several events as one write (the frames of one upstream event go out together)."""
    if len(events) == 1:
        return encode_event(events[0])
    return b"".join([e.FRAME + _ENCODER.encode(e) + b"\n\n" for e in events])
