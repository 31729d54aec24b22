"""The shape of a decoded request for the access log: counts by kind, never content.

Total: it reads what decoding already validated and never decides an answer (no validation, nothing that raises).
"""

from __future__ import annotations

from messages_bridge.observability.record import RequestRecord
from messages_bridge.protocol import anthropic as a
from messages_bridge.translate.tools import ToolSet

_MAX_MODEL_CHARS = 100


def describe(req: a.MessagesRequest | a.CountTokensRequest, tools: ToolSet, record: RequestRecord) -> None:
    """Fill the record's model, stream flag, message/tool counts and content blocks by type.

    Block types come from msgspec's tagged union, so the keys are a closed set of names, not client values.
    """
    record.model = req.model[:_MAX_MODEL_CHARS]
    record.stream = bool(getattr(req, "stream", False))
    record.messages = len(req.messages)
    record.tools = tools.count
    blocks: dict[str, int] = {}
    if isinstance(req.system, list):
        blocks["system_text"] = len(req.system)
    elif req.system:
        blocks["system_text"] = 1
    for message in req.messages:
        if isinstance(message.content, str):
            blocks["text"] = blocks.get("text", 0) + 1
            continue
        for block in message.content:
            kind = type(block).__struct_config__.tag
            if isinstance(kind, str):
                blocks[kind] = blocks.get(kind, 0) + 1
    record.blocks = blocks
