"""Derive a Responses event stream from a final `Response` (used by the simulator and by tests).

Text and arguments are split into deltas of `chunk` characters, exactly as the real API streams them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]


def _pieces(text: str, chunk: int) -> list[str]:
    return [text[i : i + chunk] for i in range(0, len(text), chunk)] or []


def _shell(response: JSON, status: str) -> JSON:
    return {**response, "status": status, "output": [], "usage": None}


def _message_events(item: JSON, index: int, chunk: int) -> Iterator[JSON]:
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "status": "in_progress", "content": []},
    }
    for ci, part in enumerate(item["content"]):
        kind = part["type"]
        empty = (
            {"type": kind, "text": "", "annotations": []} if kind == "output_text" else {"type": kind, "refusal": ""}
        )
        base = {"item_id": item["id"], "output_index": index, "content_index": ci}
        yield {"type": "response.content_part.added", **base, "part": empty}
        text = part.get("text", part.get("refusal", ""))
        delta_type = "response.output_text.delta" if kind == "output_text" else "response.refusal.delta"
        # Like the real API, an annotation follows the delta that completes the span it annotates.
        annotations = sorted(enumerate(part.get("annotations") or []), key=lambda a: a[1].get("end_index", 0))
        sent = 0
        for piece in _pieces(text, chunk):
            yield {"type": delta_type, **base, "delta": piece}
            sent += len(piece)
            while annotations and annotations[0][1].get("end_index", 0) <= sent:
                number, annotation = annotations.pop(0)
                yield {
                    "type": "response.output_text.annotation.added",
                    **base,
                    "annotation_index": number,
                    "annotation": annotation,
                }
        done = (
            {"type": "response.output_text.done", **base, "text": text}
            if kind == "output_text"
            else {"type": "response.refusal.done", **base, "refusal": text}
        )
        yield done
        yield {"type": "response.content_part.done", **base, "part": part}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def _reasoning_events(item: JSON, index: int, chunk: int) -> Iterator[JSON]:
    added = {**item, "summary": [], "encrypted_content": None}
    if "content" in item:
        added["content"] = []
    yield {"type": "response.output_item.added", "output_index": index, "item": added}
    for si, part in enumerate(item.get("summary") or []):
        base = {"item_id": item["id"], "output_index": index, "summary_index": si}
        yield {"type": "response.reasoning_summary_part.added", **base, "part": {"type": "summary_text", "text": ""}}
        for piece in _pieces(part["text"], chunk):
            yield {"type": "response.reasoning_summary_text.delta", **base, "delta": piece}
        yield {"type": "response.reasoning_summary_text.done", **base, "text": part["text"]}
        yield {"type": "response.reasoning_summary_part.done", **base, "part": part}
    for ci, part in enumerate(item.get("content") or []):  # raw reasoning (`reasoning_text`), as LM Studio sends it
        base = {"item_id": item["id"], "output_index": index, "content_index": ci}
        yield {"type": "response.content_part.added", **base, "part": {"type": part["type"], "text": ""}}
        for piece in _pieces(part["text"], chunk):
            yield {"type": "response.reasoning_text.delta", **base, "delta": piece}
        yield {"type": "response.reasoning_text.done", **base, "text": part["text"]}
        yield {"type": "response.content_part.done", **base, "part": part}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def _call_events(item: JSON, index: int, chunk: int) -> Iterator[JSON]:
    yield {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "arguments": "", "status": "in_progress"},
    }
    base = {"item_id": item["id"], "output_index": index}
    for piece in _pieces(item["arguments"], chunk):
        yield {"type": "response.function_call_arguments.delta", **base, "delta": piece}
    yield {"type": "response.function_call_arguments.done", **base, "arguments": item["arguments"]}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def _search_events(item: JSON, index: int, chunk: int) -> Iterator[JSON]:
    """A hosted search: the added item has no query yet; the done item has the query (and sources)."""
    shell = {"id": item["id"], "type": "web_search_call", "status": "in_progress", "action": {"type": "search"}}
    yield {"type": "response.output_item.added", "output_index": index, "item": shell}
    for phase in ("in_progress", "searching", "completed"):
        yield {"type": f"response.web_search_call.{phase}", "output_index": index, "item_id": item["id"]}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
_BY_TYPE = {
    "message": _message_events,
    "reasoning": _reasoning_events,
    "function_call": _call_events,
    "web_search_call": _search_events,
}


def events_for(response: JSON, *, chunk: int = 8) -> list[JSON]:
    """The full event sequence (with sequence numbers) that streams `response`."""
    events: list[JSON] = [
        {"type": "response.created", "response": _shell(response, "in_progress")},
        {"type": "response.in_progress", "response": _shell(response, "in_progress")},
    ]
    for index, item in enumerate(response["output"]):
        events.extend(_BY_TYPE[item["type"]](item, index, chunk))
    # Any other status (or none) comes, as from a faulty server, in a `response.completed`.
    terminal = _TERMINAL.get(str(response.get("status")), "response.completed")
    events.append({"type": terminal, "response": response})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def encode_sse(events: list[JSON]) -> bytes:
    """Events as SSE bytes: `event: <type>` and `data: <json>` per event."""
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events)
