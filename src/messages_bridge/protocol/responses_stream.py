"""Typed Responses API stream events (the `openai` SDK's `ResponseStreamEvent` union): only the events the
translator acts on are declared.

Each SSE event is decoded by the decoder registered for its name (the SSE `event:` line, which equals the JSON
`type`); an event without a decoder is skipped without touching its JSON. Unknown fields are ignored, and
output items stay raw until `responses.decode_output_item` dispatches them on their own `type`.
"""

from __future__ import annotations

import msgspec
from msgspec import Raw, Struct

from messages_bridge.protocol import responses as r
from messages_bridge.protocol.sse import ServerSentEvent


class ResponseCreated(Struct, kw_only=True):
    response: r.Response


# Every event of an output item carries its `output_index` (-1 when a server omits it). Item ids (`item_id`,
# `item.id`) are deliberately not decoded: GitHub Copilot gives each event of one item a different id, so only the
# index identifies the item, as in OpenAI's own SDKs.


class OutputItemAdded(Struct, kw_only=True):
    output_index: int = -1
    item: Raw


class OutputItemDone(Struct, kw_only=True):
    output_index: int = -1
    item: Raw


class PartShape(Struct, kw_only=True):
    """A content part as `content_part.added`/`.done` carry it (`done` has the part's full text)."""

    type: str
    text: str = ""
    refusal: str = ""


class ContentPartAdded(Struct, kw_only=True):
    output_index: int = -1
    content_index: int = 0
    part: PartShape


class ContentPartDone(Struct, kw_only=True):
    output_index: int = -1
    content_index: int = 0
    part: PartShape | None = None


class TextDelta(Struct, kw_only=True):
    """`response.output_text.delta` (`RefusalDelta` has the same shape: a separate type, so handlers dispatch on it)."""

    output_index: int = -1
    content_index: int = 0
    delta: str


class RefusalDelta(Struct, kw_only=True):
    output_index: int = -1
    content_index: int = 0
    delta: str


class RefusalDone(Struct, kw_only=True):
    output_index: int = -1
    refusal: str = ""


class ArgumentsDelta(Struct, kw_only=True):
    output_index: int = -1
    delta: str
    obfuscation: str | None = None  # never requested; GitHub Copilot sends it with encrypted deltas


class ArgumentsDone(Struct, kw_only=True):
    output_index: int = -1
    arguments: str = ""


class SummaryPartAdded(Struct, kw_only=True):
    output_index: int = -1
    summary_index: int = 0


class SummaryTextDelta(Struct, kw_only=True):
    output_index: int = -1
    summary_index: int = 0
    delta: str


class ReasoningTextDelta(Struct, kw_only=True):
    """`response.reasoning_text.delta`: raw reasoning (LM Studio, vLLM), a `reasoning_text` content part."""

    output_index: int = -1
    content_index: int = 0
    delta: str


class ResponseCompleted(Struct, kw_only=True):
    """`response.completed`, `response.incomplete` (same shape)."""

    response: r.Response


class ResponseFailed(Struct, kw_only=True):
    response: r.Response


class ErrorBody(Struct, kw_only=True):
    code: str | int | None = None
    message: str | None = None


class StreamError(Struct, kw_only=True):
    """The `error` event: documented flat (`code`, `message`), observed nested under `error`; both parse."""

    code: str | int | None = None
    message: str | None = None
    error: ErrorBody | None = None

    @property
    def error_code(self) -> str | None:
        code = self.error.code if self.error is not None and self.error.code is not None else self.code
        return None if code is None else str(code)

    @property
    def error_message(self) -> str | None:
        return self.error.message if self.error is not None and self.error.message else self.message


class AnnotationAdded(Struct, kw_only=True):
    """`response.output_text.annotation.added`: arrives after the text it annotates."""

    output_index: int = -1
    content_index: int = 0
    annotation: r.Annotation


StreamEvent = (
    ResponseCreated
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | TextDelta
    | RefusalDelta
    | RefusalDone
    | ArgumentsDelta
    | ArgumentsDone
    | SummaryPartAdded
    | SummaryTextDelta
    | ReasoningTextDelta
    | ResponseCompleted
    | ResponseFailed
    | StreamError
    | AnnotationAdded
)

DECODERS: dict[str, msgspec.json.Decoder[StreamEvent]] = {
    "response.created": msgspec.json.Decoder(ResponseCreated),
    "response.output_item.added": msgspec.json.Decoder(OutputItemAdded),
    "response.output_item.done": msgspec.json.Decoder(OutputItemDone),
    "response.content_part.added": msgspec.json.Decoder(ContentPartAdded),
    "response.content_part.done": msgspec.json.Decoder(ContentPartDone),
    "response.output_text.delta": msgspec.json.Decoder(TextDelta),
    "response.refusal.delta": msgspec.json.Decoder(RefusalDelta),
    "response.refusal.done": msgspec.json.Decoder(RefusalDone),
    "response.function_call_arguments.delta": msgspec.json.Decoder(ArgumentsDelta),
    "response.function_call_arguments.done": msgspec.json.Decoder(ArgumentsDone),
    "response.reasoning_summary_part.added": msgspec.json.Decoder(SummaryPartAdded),
    "response.reasoning_summary_text.delta": msgspec.json.Decoder(SummaryTextDelta),
    "response.reasoning_text.delta": msgspec.json.Decoder(ReasoningTextDelta),
    "response.completed": msgspec.json.Decoder(ResponseCompleted),
    "response.incomplete": msgspec.json.Decoder(ResponseCompleted),
    "response.failed": msgspec.json.Decoder(ResponseFailed),
    "error": msgspec.json.Decoder(StreamError),
    "response.output_text.annotation.added": msgspec.json.Decoder(AnnotationAdded),
}


class _EventType(Struct):
    type: str = ""


_TYPE_DECODER = msgspec.json.Decoder(_EventType)


def decode_event(sse: ServerSentEvent) -> StreamEvent | None:
    """The typed event, or None for an event this gateway does not act on; raises `msgspec.DecodeError`.

    A frame without an `event:` line (allowed by the SSE grammar) is dispatched on its JSON `type`.
    """
    name = sse.event
    if name is None:
        if sse.data == b"[DONE]":
            return None  # tolerated like the SDK does, although the Responses API sends no sentinel
        name = _TYPE_DECODER.decode(sse.data).type
    decoder = DECODERS.get(name)
    return decoder.decode(sse.data) if decoder is not None else None
