"""The stream capture: rebuilds a streamed reply from its frames and renames it; incomplete streams are not storable."""

from __future__ import annotations

import json

from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.threads.reply import StreamCapture, new_message_id


def frames() -> list[bytes]:
    usage: a.Usage = {
        "input_tokens": 1,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    start: a.Message = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    done: a.Usage = {**usage, "output_tokens": 3}
    events: list[o.StreamEvent] = [
        o.MessageStart(message=start),
        o.ContentBlockStart(index=0, content_block=o.ThinkingShell()),
        o.ContentBlockDelta(index=0, delta=o.ThinkingDelta(thinking="hmm")),
        o.ContentBlockDelta(index=0, delta=o.SignatureDelta(signature="mb1.sig")),
        o.ContentBlockStop(index=0),
        o.ContentBlockStart(index=1, content_block=o.TextShell()),
        o.ContentBlockDelta(index=1, delta=o.TextDelta(text="Hel")),
        o.ContentBlockDelta(index=1, delta=o.TextDelta(text="lo")),
        o.ContentBlockStop(index=1),
        o.ContentBlockStart(index=2, content_block=o.ToolUseShell(id="toolu_1", name="step")),
        o.ContentBlockDelta(index=2, delta=o.InputJsonDelta(partial_json='{"n":')),
        o.ContentBlockDelta(index=2, delta=o.InputJsonDelta(partial_json="7}")),
        o.ContentBlockStop(index=2),
        o.MessageDelta(delta=o.MessageDeltaBody(stop_reason="tool_use", stop_sequence=None), usage=done),
        o.MessageStop(),
    ]
    return [o.encode_event(e) for e in events]


def test_a_complete_stream_is_captured_exactly_and_renamed() -> None:
    reply_id = new_message_id()
    capture = StreamCapture(reply_id)
    out = b"".join(capture.feed(f) for f in frames())
    assert b"msg_up" not in out and reply_id.encode() in out
    assert capture.storable
    content = capture.content()
    assert content is not None
    assert json.loads(bytes(content)) == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "mb1.sig"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_1", "name": "step", "input": {"n": 7}},
        ],
    }


def test_a_cut_or_failed_stream_is_not_storable() -> None:
    cut = StreamCapture(new_message_id())
    for frame in frames()[:-1]:
        cut.feed(frame)
    assert not cut.storable
    failed = StreamCapture(new_message_id())
    for frame in [*frames()[:5], o.encode_event(o.ErrorEvent(error=o.ErrorDetail(type="api_error", message="x")))]:
        failed.feed(frame)
    assert not failed.storable


def test_ids_are_unique() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("msg_01") and len(i) == 28 for i in ids)
