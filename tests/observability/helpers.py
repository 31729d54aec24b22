"""Shared pieces of the observability tests: log capture through the real formatter, canary payloads, scraping."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging

UPSTREAM_KEY = "sk-upstream-secret"
CLIENT_KEY = "client-key-canary-0001"
WRONG_KEY = "client-key-canary-WRONG"
MARKERS = {
    "system": "CANARY-system-7f3a",
    "text": "CANARY-user-text-91b2",
    "image": "CANARY-image-bytes-44c1",
    "document": "CANARY-document-text-0d9e",
    "tool_use": "CANARY-tool-use-input-5a77",
    "tool_result": "CANARY-tool-result-c3e0",
    "thinking": "CANARY-thinking-text-2b18",
    "tool_schema": "CANARY-tool-description-e6f5",
    "metadata": "CANARY-user-id-8812",
    "reply_text": "CANARY-reply-text-a1f0",
    "reply_args": "CANARY-reply-args-77d3",
    "reply_reasoning": "CANARY-reply-reasoning-3c4d",
}
IMAGE_B64 = base64.b64encode(MARKERS["image"].encode()).decode()
SECRETS = (UPSTREAM_KEY, CLIENT_KEY, WRONG_KEY)


class LogCapture:
    """The gateway's real log output (our handler and formatter, writing to a buffer)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def access(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["logger"] == "messages_bridge.access"]


@pytest.fixture
def capture_logs() -> Iterator[Callable[[Settings], LogCapture]]:
    """Install the gateway's logging on a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)

    def install(settings: Settings) -> LogCapture:
        capture = LogCapture()
        configure_logging(settings, stream=capture.buffer)
        return capture

    yield install
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def canary_request(**extra: Any) -> dict[str, Any]:
    """A conversation with a marker in every place content can hide."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": MARKERS["system"]}],
        "metadata": {"user_id": MARKERS["metadata"]},
        "tools": [
            {
                "name": "lookup",
                "description": MARKERS["tool_schema"],
                "input_schema": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "description": MARKERS["tool_schema"]}},
                },
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": MARKERS["text"]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_B64}},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": MARKERS["document"]},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": MARKERS["thinking"], "signature": "sig-opaque"},
                    {"type": "tool_use", "id": "toolu_01", "name": "lookup", "input": {"q": MARKERS["tool_use"]}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": MARKERS["tool_result"]},
                ],
            },
        ],
        **extra,
    }


def canary_reply(*, input_tokens: int = 120, cached: int = 20, output_tokens: int = 30, reasoning: int = 10) -> Any:
    """A Responses API reply with markers in reasoning, output text and function-call arguments."""
    return {
        "id": "resp_canary",
        "object": "response",
        "status": "completed",
        "model": "gpt-5",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": MARKERS["reply_reasoning"]}],
            },
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": MARKERS["reply_text"], "annotations": []}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "lookup",
                "status": "completed",
                "arguments": json.dumps({"q": MARKERS["reply_args"]}),
            },
        ],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def leaks(text: str) -> list[str]:
    """Every marker or secret (or its base64 form) found in `text`."""
    needles = [*MARKERS.values(), IMAGE_B64, *SECRETS]
    return [n for n in needles if n in text]


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
