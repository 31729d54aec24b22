"""Whole content blocks → the stream events that deliver them (pure): for answers the gateway composes itself.

Folding the events back (as a client accumulates them) gives the same blocks, so one answer can be sent
streaming or not with identical content.
"""

from __future__ import annotations

import msgspec

from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o

_ENCODER = msgspec.json.Encoder()


class BlockEvents:
    """Blocks → events, with indexes contiguous across calls."""

    def __init__(self) -> None:
        self.index = 0

    def events(self, blocks: list[a.ContentOut]) -> list[o.StreamEvent]:
        out: list[o.StreamEvent] = []
        for block in blocks:
            out += _block_events(self.index, block)
            out.append(o.ContentBlockStop(self.index))
            self.index += 1
        return out


def _block_events(i: int, block: a.ContentOut) -> list[o.StreamEvent]:
    """A block's start and deltas (results arrive whole in their start, as the real API sends them)."""
    if block["type"] == "text":
        out: list[o.StreamEvent] = [o.ContentBlockStart(i, o.TextShell())]
        out += [o.ContentBlockDelta(i, o.CitationsDelta(c)) for c in block.get("citations", [])]
        if block["text"]:
            out.append(o.ContentBlockDelta(i, o.TextDelta(block["text"])))
        return out
    if block["type"] == "thinking":
        return [
            o.ContentBlockStart(i, o.ThinkingShell()),
            o.ContentBlockDelta(i, o.ThinkingDelta(block["thinking"])),
            o.ContentBlockDelta(i, o.SignatureDelta(block["signature"])),
        ]
    if block["type"] == "web_search_tool_result":
        return [o.ContentBlockStart(i, o.WebSearchResultShell(block["tool_use_id"], block["content"]))]
    shell: o.BlockShell
    if block["type"] == "tool_use":
        shell = o.ToolUseShell(block["id"], block["name"])
    else:
        shell = o.ServerToolUseShell(block["id"], block["name"])
    arguments = _ENCODER.encode(block["input"]).decode()
    deltas: list[o.StreamEvent] = [o.ContentBlockDelta(i, o.InputJsonDelta(arguments))] if arguments != "{}" else []
    return [o.ContentBlockStart(i, shell), *deltas]
