"""Capturing the reply a thread stores: from a finished Message, or from the SSE frames of a stream as they pass.

Replies get an id minted here (random, so never reused: the upstream's ids may repeat, and a thread is keyed by
its reply id). A streamed reply is rebuilt from its own events: content blocks from `content_block_start`,
deltas appended in order, tool input parsed at `content_block_stop`. Only a stream that reached `message_stop`
without an `error` is complete.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from msgspec import Raw

from messages_bridge.protocol import anthropic as a

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ENCODER = msgspec.json.Encoder()
_DATA = b"\ndata: "


def new_message_id() -> str:
    """`msg_01` + 22 random characters, the shape of Anthropic's ids."""
    return "msg_01" + "".join([_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(22)])


def assistant_message(content: list[Any]) -> Raw:
    """The history entry of a reply: the assistant message exactly as it was returned."""
    return Raw(_ENCODER.encode({"role": "assistant", "content": content}))


def stored_reply(message: a.Message) -> Raw | None:
    """What a non-streamed reply adds to its thread (None for an empty reply, which no history may hold)."""
    return assistant_message(list(message["content"])) if message["content"] else None


class StreamCapture:
    """Follows one stream's frames: renames the message to `reply_id` and rebuilds its content."""

    def __init__(self, reply_id: str) -> None:
        self.reply_id = reply_id
        self.complete = False
        self.failed = False
        self.stop_reason: str | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._renamed = False
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Observe one chunk of the response body; returns it, renamed if it holds `message_start`."""
        data = self._pending + chunk
        frames = data.split(b"\n\n")
        self._pending = frames.pop()
        for frame in frames:
            chunk = self._observe(frame, chunk)
        return chunk

    def content(self) -> Raw | None:
        """The reply's history entry once the stream completed (None if it has no content)."""
        blocks = [self._blocks[i] for i in sorted(self._blocks)]
        return assistant_message(blocks) if blocks else None

    @property
    def storable(self) -> bool:
        return self.complete and not self.failed and self.stop_reason != "refusal"

    def _observe(self, frame: bytes, chunk: bytes) -> bytes:
        start = frame.find(_DATA)
        if start < 0 or self.failed:
            return chunk
        try:
            event = msgspec.json.decode(frame[start + len(_DATA) :])
            return self._apply(event, chunk)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.failed = True  # a frame this capture cannot follow: store nothing rather than a wrong reply
            return chunk

    def _apply(self, event: dict[str, Any], chunk: bytes) -> bytes:
        kind = event.get("type")
        if kind == "message_start":
            return self._rename(event["message"]["id"], chunk)
        if kind == "content_block_start":
            self._blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            self._delta(self._blocks[event["index"]], event["index"], event["delta"])
        elif kind == "content_block_stop":
            self._close(event["index"])
        elif kind == "message_delta":
            self.stop_reason = event["delta"].get("stop_reason")
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            self.failed = True
        return chunk

    def _rename(self, old: str, chunk: bytes) -> bytes:
        if self._renamed:
            self.failed = True
            return chunk
        self._renamed = True
        needle = b'"id":"' + old.encode() + b'"'
        if needle not in chunk:
            self.failed = True
            return chunk
        return chunk.replace(needle, b'"id":"' + self.reply_id.encode() + b'"', 1)

    def _delta(self, block: dict[str, Any], index: int, delta: dict[str, Any]) -> None:
        kind = delta["type"]
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = block.get("signature", "") + delta["signature"]
        elif kind == "input_json_delta":
            self._json.setdefault(index, []).append(delta["partial_json"])
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
        else:
            raise ValueError(kind)

    def _close(self, index: int) -> None:
        parts = self._json.pop(index, None)
        if parts is not None and "".join(parts).strip():
            self._blocks[index]["input"] = msgspec.json.decode("".join(parts))
