"""Precomputed OpenAI Responses wire payloads for the fake upstream.

Pure functions: no I/O. Everything is built once per configuration and then served as bytes,
so the fake upstream spends its CPU on sockets, not on JSON encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

Shape = Literal["text", "tool"]

RESPONSE_ID = "resp_bench0000000000000000000000000001"
MESSAGE_ID = "msg_bench0000000000000000000000000001"
CALL_ITEM_ID = "fc_bench0000000000000000000000000001"
CALL_ID = "call_bench00000000000001"
TOOL_NAME = "Bash"
MODEL = "gpt-bench"
CREATED_AT = 1760000000
INPUT_TOKENS = 18000
CACHED_TOKENS = 16000
REASONING_TOKENS = 0

JSONObj = dict[str, object]


@dataclass(frozen=True)
class Payloads:
    """Wire bytes served for one configuration: a non-stream JSON body and the SSE frames."""

    json_body: bytes
    head_frames: tuple[bytes, ...]
    delta_frames: tuple[bytes, ...]
    tail_frames: tuple[bytes, ...]

    @property
    def stream_body(self) -> bytes:
        """The whole SSE body, for streams served without delays."""
        return b"".join(self.head_frames + self.delta_frames + self.tail_frames)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def sse_frame(event: JSONObj) -> bytes:
    """Encode one Responses stream event as `event: <type>\\ndata: <json>\\n\\n`."""
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


def text_deltas(n: int) -> list[str]:
    """N short text pieces, like model tokens."""
    return [("Hello" if i == 0 else f" word{i}") for i in range(n)]


def tool_argument_deltas(n: int) -> list[str]:
    """Split a JSON arguments string for the `Bash` tool into N non-empty pieces."""
    command = "echo " + " ".join(f"w{i}" for i in range(n))
    arguments = _dumps({"command": command, "description": "bench"})
    size = len(arguments) // n
    pieces = [arguments[i * size : (i + 1) * size] for i in range(n - 1)]
    pieces.append(arguments[(n - 1) * size :])
    return pieces


def usage(output_tokens: int) -> JSONObj:
    """A `ResponseUsage` object."""
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + output_tokens,
    }


def message_item(text: str, *, status: str) -> JSONObj:
    """An assistant `message` output item holding one `output_text` part (empty content for `in_progress`)."""
    content: list[JSONObj] = []
    if status == "completed":
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": MESSAGE_ID, "type": "message", "status": status, "role": "assistant", "content": content}


def call_item(arguments: str, *, status: str) -> JSONObj:
    """A `function_call` output item."""
    return {
        "id": CALL_ITEM_ID,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": CALL_ID,
        "name": TOOL_NAME,
    }


def response_object(*, status: str, output: list[JSONObj], output_tokens: int | None) -> JSONObj:
    """A `Response` object; `usage` is null while in progress."""
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": CREATED_AT,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None if output_tokens is None else usage(output_tokens),
        "metadata": {},
    }


def final_item(shape: Shape, n: int) -> JSONObj:
    """The completed output item for a shape."""
    if shape == "tool":
        return call_item("".join(tool_argument_deltas(n)), status="completed")
    return message_item("".join(text_deltas(n)), status="completed")


def build_payloads(shape: Shape, n: int) -> Payloads:
    """Build the non-stream body and the stream frames for `shape` with `n` deltas."""
    final = response_object(status="completed", output=[final_item(shape, n)], output_tokens=n)
    events = _text_events(n) if shape == "text" else _tool_events(n)
    numbered = [{**e, "sequence_number": i} for i, e in enumerate(events)]
    frames = [sse_frame(e) for e in numbered]
    delta_type = "response.output_text.delta" if shape == "text" else "response.function_call_arguments.delta"
    first = next(i for i, e in enumerate(numbered) if e["type"] == delta_type)
    return Payloads(
        json_body=_dumps(final).encode(),
        head_frames=tuple(frames[:first]),
        delta_frames=tuple(frames[first : first + n]),
        tail_frames=tuple(frames[first + n :]),
    )


def _opening_events() -> list[JSONObj]:
    shell = response_object(status="in_progress", output=[], output_tokens=None)
    return [{"type": "response.created", "response": shell}, {"type": "response.in_progress", "response": shell}]


def _completed_event(shape: Shape, n: int) -> JSONObj:
    final = response_object(status="completed", output=[final_item(shape, n)], output_tokens=n)
    return {"type": "response.completed", "response": final}


def _text_events(n: int) -> list[JSONObj]:
    deltas = text_deltas(n)
    text = "".join(deltas)
    ids: JSONObj = {"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0}
    part_done = {"type": "output_text", "text": text, "annotations": []}
    return [
        *_opening_events(),
        {"type": "response.output_item.added", "output_index": 0, "item": message_item("", status="in_progress")},
        {"type": "response.content_part.added", **ids, "part": {"type": "output_text", "text": "", "annotations": []}},
        *({"type": "response.output_text.delta", **ids, "delta": d, "logprobs": []} for d in deltas),
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": part_done},
        {"type": "response.output_item.done", "output_index": 0, "item": message_item(text, status="completed")},
        _completed_event("text", n),
    ]


def _tool_events(n: int) -> list[JSONObj]:
    deltas = tool_argument_deltas(n)
    arguments = "".join(deltas)
    ids: JSONObj = {"item_id": CALL_ITEM_ID, "output_index": 0}
    return [
        *_opening_events(),
        {"type": "response.output_item.added", "output_index": 0, "item": call_item("", status="in_progress")},
        *({"type": "response.function_call_arguments.delta", **ids, "delta": d} for d in deltas),
        {"type": "response.function_call_arguments.done", **ids, "arguments": arguments},
        {"type": "response.output_item.done", "output_index": 0, "item": call_item(arguments, status="completed")},
        _completed_event("tool", n),
    ]
