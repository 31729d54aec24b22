"""A fast local input-token estimate, used when the upstream cannot count (documented as an estimate).

About 4 characters per token for text and JSON (tool schemas, tool inputs); a fixed cost per image and per
PDF page estimate. It exists so `count_tokens` and `message_start` usage are never zero, not to bill.
"""

from __future__ import annotations

from messages_bridge.protocol import anthropic as a
from messages_bridge.translate.tools import ToolSet

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600  # Anthropic's cost of a ~1.2 megapixel image ((w*h)/750)
PDF_PAGE_TOKENS = 1500
PDF_BYTES_PER_PAGE = 60_000
MESSAGE_OVERHEAD = 4


def _block_chars(block: a.ContentBlock) -> tuple[int, int]:
    """(characters, fixed tokens) of one content block."""
    match block:
        case a.TextBlock(text=text):
            return len(text), 0
        case a.ImageBlock():
            return 0, IMAGE_TOKENS
        case a.DocumentBlock(source=a.Base64Source(data=data)):
            pages = max(1, (len(data) * 3 // 4) // PDF_BYTES_PER_PAGE)
            return 0, pages * PDF_PAGE_TOKENS
        case a.DocumentBlock(source=a.PlainTextSource(data=data)):
            return len(data), 0
        case a.ToolUseBlock(name=name, input=raw) | a.ServerToolUseBlock(name=name, input=raw):
            return len(name) + len(raw), 0
        case a.ToolResultBlock(content=str() as text):
            return len(text), 0
        case a.ToolResultBlock(content=list() as inner):
            sums = [_block_chars(b) for b in inner]
            return sum(c for c, _ in sums), sum(t for _, t in sums)
        case a.ThinkingBlock(thinking=text):
            return len(text), 0
        case a.SearchResultBlock(content=texts):
            return sum(len(t.text) for t in texts), 0
        case _:
            return 16, 0


def estimate_input_tokens(req: a.CountTokensRequest | a.MessagesRequest, tools: ToolSet) -> int:
    """Estimated input tokens of system, messages, tool definitions (`tools`, the request's) and images."""
    chars, fixed = 0, 0
    if isinstance(req.system, str):
        chars += len(req.system)
    elif req.system:
        chars += sum(len(b.text) for b in req.system)
    for message in req.messages:
        fixed += MESSAGE_OVERHEAD
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for block in message.content:
            c, t = _block_chars(block)
            chars += c
            fixed += t
    chars += tools.chars
    return chars // CHARS_PER_TOKEN + fixed
