"""The access log's description of a request is total: it counts what decoding validated and never answers."""

from __future__ import annotations

import msgspec

from messages_bridge.observability.record import RequestRecord
from messages_bridge.observability.shape import describe
from messages_bridge.protocol.request_fields import MESSAGES
from messages_bridge.translate.tools import NO_TOOLS, tool_set


def _request(tools: object) -> bytes:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}]
    return msgspec.json.encode({"model": "m" * 300, "max_tokens": 5, "messages": messages, "tools": tools})


def test_describe_never_looks_inside_the_tool_array() -> None:
    req = MESSAGES.decode(_request([{"description": "no name: invalid"}])).request
    record = RequestRecord()
    describe(req, NO_TOOLS, record)  # the invalid array is the translation's to refuse, not the log's
    assert record.tools == 0 and record.messages == 1 and record.blocks == {"text": 2}
    assert record.model == "m" * 100


def test_describe_counts_the_translated_tools() -> None:
    req = MESSAGES.decode(_request([{"name": "a"}, {"name": "b"}])).request
    record = RequestRecord()
    describe(req, tool_set(req.tools), record)
    assert record.tools == 2
