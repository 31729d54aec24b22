"""Helpers for the web search tests: settings per mode, the Claude Code sub-request, recorded answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from messages_bridge.config import Settings
from messages_bridge.protocol import request_fields as fields
from messages_bridge.translate.request import Translation, to_responses_request
from messages_bridge.translate.tools import tool_set

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "websearch"
HOSTED = Settings(openai_api_key=SecretStr("sk-test"), openai_base_url="http://127.0.0.1:9/v1", web_search_hosted=True)
GATEWAY = Settings(
    openai_api_key=SecretStr("sk-test"),
    openai_base_url="http://127.0.0.1:9/v1",
    web_search_backend_url="http://127.0.0.1:9",
)
OFF = Settings(openai_api_key=SecretStr("sk-test"), openai_base_url="http://127.0.0.1:9/v1")


def subrequest(**changes: Any) -> dict[str, Any]:
    """Claude Code 2.1.197's WebSearch sub-request, as captured (stream: true)."""
    body: dict[str, Any] = json.loads((FIXTURES / "claude_code_subrequest.json").read_text())
    body.update(changes)
    return body


def translate(body: dict[str, Any], settings: Settings = HOSTED) -> Translation:
    req = fields.MESSAGES.decode(json.dumps(body).encode()).request
    return to_responses_request(req, tool_set(req.tools), settings.profile(req.model), api_version="2023-06-01")


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "recorded" / f"{name}.json").read_text())
    return data
