"""Every real Claude Code capture goes through the non-streaming path and yields a valid upstream request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"  # recorded from Claude Code 2.1.197
MESSAGE_CAPTURES = sorted(CAPTURES.glob("messages_*.json"))
COUNT_CAPTURES = sorted(CAPTURES.glob("count_tokens_*.json"))


def _capture(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    request = json.loads(path.read_text())["request"]
    headers = {k: v for k, v in request["headers"].items() if k in ("anthropic-version", "anthropic-beta")}
    return request["body"], headers


def test_captures_are_present() -> None:
    assert len(MESSAGE_CAPTURES) >= 15 and len(COUNT_CAPTURES) >= 2


@pytest.mark.parametrize("path", MESSAGE_CAPTURES, ids=lambda p: p.stem)
async def test_message_capture_non_stream(path: Path, client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body, headers = _capture(path)
    body["stream"] = False
    reply = await client.post("/v1/messages?beta=true", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    message = reply.json()
    assert message["type"] == "message" and message["model"] == body["model"]
    assert message["stop_reason"] in ("end_turn", "tool_use", "max_tokens")
    sent = upstream.requests[-1]
    assert sent["store"] is False and sent["max_output_tokens"] >= 16
    assert len(sent.get("tools", [])) == len(body.get("tools", []))
    assert all(t["strict"] is False for t in sent.get("tools", []))


@pytest.mark.parametrize("path", COUNT_CAPTURES, ids=lambda p: p.stem)
async def test_count_tokens_capture(path: Path, client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    body, headers = _capture(path)
    reply = await client.post("/v1/messages/count_tokens?beta=true", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["input_tokens"] > 0
    assert upstream.script.received[-1].path.endswith("/responses/input_tokens")
