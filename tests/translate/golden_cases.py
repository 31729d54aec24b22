"""Golden stream cases: upstream SSE (`<case>.responses.sse`) → Anthropic SSE (`<case>.anthropic.sse`).

The upstream files are derived once from a final Response with the simulator's event deriver (plus hand-made
failures), then committed; the expected files are the translator's output, reviewed by reading the diff.
Regenerate after a deliberate change with `python -m tests.translate.golden_cases [--inputs]`.
"""

from __future__ import annotations

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

USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
         "output_tokens": 96, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 1296}  # fmt: skip


def _response(output: list[JSON], status: str = "completed", **extra: Any) -> JSON:
    return {"id": "resp_68a1golden", "object": "response", "model": "gpt-5", "status": status, "output": output,
            "usage": USAGE, "error": None, "incomplete_details": None, **extra}  # fmt: skip


def _text(text: str, item_id: str = "msg_68a3") -> JSON:
    return {"id": item_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip


def _call(name: str, arguments: str, n: int) -> JSON:
    return {"id": f"fc_68b{n}", "type": "function_call", "status": "completed", "call_id": f"call_Qx{n}",
            "name": name, "arguments": arguments}  # fmt: skip


def _reasoning(*summary: str) -> JSON:
    return {"id": "rs_68a2", "type": "reasoning", "summary": [{"type": "summary_text", "text": s} for s in summary],
            "encrypted_content": "gAAAAABoZ2VuY3J5cHRlZA=="}  # fmt: skip


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
    cases["failed_midstream"] = _cut_before_terminal(events_for(_response([_text(long_text)]), chunk=5),
                                                     {"type": "response.failed", "response": failed})  # fmt: skip
    cases["error_event"] = _cut_before_terminal(
        events_for(_response([_text(long_text)]), chunk=5),
        {"type": "error", "error": {"type": "server_error", "code": "server_is_overloaded",
                                    "message": "The server is overloaded.", "param": None}},
    )  # fmt: skip
    return cases


def translation_for(case: str) -> ReplyContext:
    """What the request side would have produced for each case."""
    names = {"mcp__files__read": "mcp__files.read"}
    if case == "reasoning_text_tool":
        return ReplyContext(tool_names=names, thinking_requested=True)
    if case == "stop_sequence_split":
        return ReplyContext(stop_sequences=("END_OF_ANSWER", "\n\nHuman:"))
    return ReplyContext(tool_names=names)


CASES = ("text", "text_tool", "parallel_tools", "reasoning_text_tool", "refusal", "incomplete", "failed_midstream",
         "error_event", "stop_sequence_split")  # fmt: skip


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
