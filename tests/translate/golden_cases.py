"""Golden stream cases: upstream SSE (`<case>.responses.sse`) → Anthropic SSE (`<case>.anthropic.sse`).

Most upstream files are derived once from a final Response with the simulator's event deriver (plus hand-made
failures and the distortions other servers apply), then committed; the `vllm_*` ones are real recordings (see
`fixtures/streams/README.md`) and are never regenerated. The expected files are the translator's output, reviewed
by reading the diff. Regenerate after a deliberate change with `python -m tests.translate.golden_cases [--inputs]`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from messages_bridge.demo.events import events_for
from messages_bridge.protocol.anthropic_stream import encode_events
from messages_bridge.translate.request import ReplyContext
from tests.streamkit import translate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "streams"
JSON = dict[str, Any]

USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
    "output_tokens": 96,
    "output_tokens_details": {"reasoning_tokens": 64},
    "total_tokens": 1296,
}


def _response(output: list[JSON], status: str = "completed", **extra: Any) -> JSON:
    return {
        "id": "resp_68a1golden",
        "object": "response",
        "model": "gpt-5",
        "status": status,
        "output": output,
        "usage": USAGE,
        "error": None,
        "incomplete_details": None,
    } | extra


def _text(text: str, item_id: str = "msg_68a3") -> JSON:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call(name: str, arguments: str, n: int) -> JSON:
    return {
        "id": f"fc_68b{n}",
        "type": "function_call",
        "status": "completed",
        "call_id": f"call_Qx{n}",
        "name": name,
        "arguments": arguments,
    }


def _reasoning(*summary: str) -> JSON:
    return {
        "id": "rs_68a2",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s} for s in summary],
        "encrypted_content": "gAAAAABoZ2VuY3J5cHRlZA==",
    }


def _copilot(events: list[JSON]) -> list[JSON]:
    """As GitHub Copilot streams: every event of an item with a different id, argument deltas encrypted."""
    out: list[JSON] = []
    for n, event in enumerate(json.loads(json.dumps(events))):
        blob = hashlib.sha256(str(n).encode()).hexdigest()  # Copilot's ids are long opaque blobs
        if "item_id" in event:
            event["item_id"] = blob
        if isinstance(event.get("item"), dict):
            event["item"]["id"] = blob
        if event["type"] == "response.function_call_arguments.delta":
            event["delta"], event["obfuscation"] = blob[:12], "Zx"
        out.append(event)
    return out


def _bad_item(item: object) -> list[JSON]:
    start = {"type": "response.created", "response": {"id": "resp_68a1bad", "status": "in_progress", "output": []}}
    return [start, {"type": "response.output_item.added", "output_index": 0, "item": item}]


def _interleaved() -> list[JSON]:
    """A text delta for output item 0 after item 1 began: items do not interleave in any known server."""
    events = events_for(_response([_text("First."), _text("Second.", "msg_68a4")]), chunk=4)
    second = next(n for n, e in enumerate(events) if e["type"] == "response.output_item.added" and e["output_index"])
    late = {
        "type": "response.output_text.delta",
        "item_id": "msg_68a3",
        "output_index": 0,
        "content_index": 0,
        "delta": "late",
    }
    return [*events[: second + 2], late, *events[second + 2 :]]


def _other_servers() -> dict[str, list[JSON]]:
    """What servers other than OpenAI's send, and faulty answers: each must translate faithfully or fail loudly."""
    weather = '{"location":"Paris"}'
    plain = {"id": "rs_68a2", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan the answer."}]}
    raw = {
        "id": "rs_68a2",
        "type": "reasoning",
        "summary": [],
        "content": [
            {"type": "reasoning_text", "text": "The user wants the weather. "},
            {"type": "reasoning_text", "text": "Call the tool."},
        ],
    }
    calls = [
        {**_call("get_weather", weather, 1), "call_id": ""},
        _call("get_weather", weather, 2),
        {**_call("get_weather", weather, 3), "call_id": "call_Qx2"},
    ]
    negative = {
        "input_tokens": -7,
        "input_tokens_details": {"cached_tokens": -3},
        "output_tokens": -1,
        "output_tokens_details": {"reasoning_tokens": -2},
    }
    copilot = _response([_reasoning("**Checking**"), _text("Let me check."), _call("get_weather", weather, 1)])
    unfinished = _response([_text("Hi.")], status="in_progress")
    no_status = {k: v for k, v in _response([_text("Hi.")]).items() if k != "status"}
    return {
        "copilot_rotating_ids": _copilot(events_for(copilot, chunk=6)),
        "reasoning_without_encrypted_content": events_for(_response([plain, _text("Sunny.")]), chunk=5),
        "reasoning_text_parts": events_for(_response([raw, _call("get_weather", weather, 1)]), chunk=7),
        "tool_ids_empty_and_duplicate": events_for(_response(calls), chunk=8),
        "usage_negative": events_for(_response([_text("Hi.")], usage=negative), chunk=4),
        "status_in_progress": events_for(unfinished, chunk=4),
        "status_missing": events_for(no_status, chunk=4),
        "item_not_an_object": _bad_item(42),
        "function_call_without_call_id": _bad_item({"type": "function_call", "id": "fc_1", "name": "f"}),
        "function_call_without_name": _bad_item({"type": "function_call", "id": "fc_1", "call_id": "c"}),
        "interleaved_items": _interleaved(),
    }


def _cut_before_terminal(events: list[JSON], tail: JSON) -> list[JSON]:
    """Keep the events up to the middle of the stream, then end with `tail` (a failure)."""
    kept = events[: len(events) // 2]
    tail["sequence_number"] = len(kept)
    return [*kept, tail]


def _inputs() -> dict[str, list[JSON]]:
    weather = '{"location":"Paris","unit":"celsius"}'
    long_text = "Paris is sunny today: 21\u00b0C \u2600\ufe0f, light wind."
    cases = {
        "text": events_for(_response([_text("Hello! How can I help you today? \u00e9\u6f22\U0001f600")]), chunk=7),
        "text_tool": events_for(_response([_text("Let me check."), _call("get_weather", weather, 1)]), chunk=9),
        "parallel_tools": events_for(
            _response([_call("get_weather", weather, 1), _call("mcp__files__read", '{"path":"/tmp/a.txt"}', 2)]),
            chunk=6,
        ),
        "reasoning_text_tool": events_for(
            _response(
                [
                    _reasoning("**Checking the weather**", "Then answer."),
                    _text("Let me check."),
                    _call("get_weather", weather, 1),
                ]
            ),
            chunk=8,
        ),
        "refusal": events_for(
            _response(
                [
                    {
                        "id": "msg_68a5",
                        "type": "message",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "refusal", "refusal": "I can't help with that."}],
                    }
                ]
            ),
            chunk=10,
        ),
        "incomplete": events_for(
            _response([_text(long_text)], status="incomplete", incomplete_details={"reason": "max_output_tokens"}),
            chunk=5,
        ),
        "stop_sequence_split": events_for(_response([_text("Answer: 42\nEND_OF_ANSWER\nignored trailer")]), chunk=4),
    }
    failed = _response([], status="failed", error={"code": "rate_limit_exceeded", "message": "Rate limit reached."})
    cases["failed_midstream"] = _cut_before_terminal(
        events_for(_response([_text(long_text)]), chunk=5), {"type": "response.failed", "response": failed}
    )
    cases["error_event"] = _cut_before_terminal(
        events_for(_response([_text(long_text)]), chunk=5),
        {
            "type": "error",
            "error": {
                "type": "server_error",
                "code": "server_is_overloaded",
                "message": "The server is overloaded.",
                "param": None,
            },
        },
    )
    return cases | _other_servers()


THINKING = frozenset(
    {
        "reasoning_text_tool",
        "copilot_rotating_ids",
        "reasoning_without_encrypted_content",
        "reasoning_text_parts",
        "vllm_gpt_oss_reasoning_text",
    }
)
RECORDED = ("vllm_gpt_oss_reasoning_text", "vllm_gemma4_text_data_only", "vllm_gemma4_function_call_data_only")


def translation_for(case: str) -> ReplyContext:
    """What the request side would have produced for each case."""
    names = {"mcp__files__read": "mcp__files.read"}
    if case in THINKING:
        return ReplyContext(tool_names=names, thinking_requested=True)
    if case == "stop_sequence_split":
        return ReplyContext(stop_sequences=("END_OF_ANSWER", "\n\nHuman:"))
    return ReplyContext(tool_names=names)


CASES = (
    "text",
    "text_tool",
    "parallel_tools",
    "reasoning_text_tool",
    "refusal",
    "incomplete",
    "failed_midstream",
    "error_event",
    "stop_sequence_split",
    *_other_servers(),
    *RECORDED,
)


def encode_upstream(events: list[JSON]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events)


def expected_output(case: str) -> bytes:
    upstream = (FIXTURES / f"{case}.responses.sse").read_bytes()
    events, _ = translate([upstream], translation_for(case), input_tokens=300)
    return encode_events(events)


def main(argv: list[str]) -> None:
    if "--inputs" in argv:
        for case, events in _inputs().items():
            (FIXTURES / f"{case}.responses.sse").write_bytes(encode_upstream(events))
    for case in CASES:
        (FIXTURES / f"{case}.anthropic.sse").write_bytes(expected_output(case))


if __name__ == "__main__":
    main(sys.argv[1:])
