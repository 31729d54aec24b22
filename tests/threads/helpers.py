"""Shared pieces of the thread tests: a tool, request bodies, reading thread rejections, and a clock set by hand."""

from __future__ import annotations

import json
from typing import Any

import httpx

from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.service import ThreadService

BETA = {"anthropic-beta": "message-threads-2026-08-12"}
MODEL = "claude-sonnet-5"
STEP: dict[str, Any] = {
    "name": "step",
    "description": "Take step number n.",
    "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
}
SYSTEM = "You are terse."


class Clock:
    """A monotonic clock that moves only when the test sets `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def on_clock(threads: ThreadService, clock: Clock) -> MemoryThreadStore:
    """Give the gateway's thread service an empty in-memory store with the same limits that reads `clock`, so the
    test decides when time passes (before the first request: nothing held is lost)."""
    held = threads.store
    assert isinstance(held, MemoryThreadStore) and len(held) == 0
    threads.store = MemoryThreadStore(held.limits, clock=clock)
    return threads.store


def create(prompt: str = "Please call `step` 3 times", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 200,
        "system": SYSTEM,
        "tools": [STEP],
        "messages": [{"role": "user", "content": prompt}],
        "thread": {"type": "create"},
        **extra,
    }


def continue_(previous: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 200,
        "messages": messages,
        "thread": {"type": "continue", "previous_message_id": previous},
        **extra,
    }


def tool_results(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The user turn answering every tool call of `message` (step n returns `r<n>`)."""
    blocks = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": f"r{b['input']['n']}"}
        for b in message["content"]
        if b["type"] == "tool_use"
    ]
    return [{"role": "user", "content": blocks}]


def error_code(reply: httpx.Response) -> str | None:
    code = reply.json()["error"].get("details", {}).get("error_code")
    return code if isinstance(code, str) else None


def sse_message(text: str) -> dict[str, Any]:
    """The Message a complete SSE body describes (id, content with tool inputs, stop reason)."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for frame in text.split("\n\n"):
        data = next((line[6:] for line in frame.splitlines() if line.startswith("data: ")), None)
        if data is None:
            continue
        event = json.loads(data)
        if event["type"] == "message_start":
            message = event["message"]
        elif event["type"] == "content_block_start":
            message["content"].append(event["content_block"])
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            partial[event["index"]] = partial.get(event["index"], "") + event["delta"]["partial_json"]
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            message["content"][event["index"]]["text"] += event["delta"]["text"]
        elif event["type"] == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
    for index, raw in partial.items():
        message["content"][index]["input"] = json.loads(raw)
    return message
