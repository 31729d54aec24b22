"""Golden fixture pairs for the request and response translation (docs/mapping.md).

`fixtures/requests/<case>.anthropic.json` → `<case>.responses.json` (the upstream body, or the 4xx it raises);
`fixtures/responses/<case>.responses.json` → `<case>.anthropic.json` (the Message, or the error), translated with
the context of `<case>.request.json` when present. `UPDATE_GOLDENS=1` rewrites the expected files; review the diff
against docs/mapping.md before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from messages_bridge.app.body import decode_request
from messages_bridge.config import Settings
from messages_bridge.errors import GatewayError
from messages_bridge.protocol import request_fields as fields
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import NEW_API_VERSION, to_responses_request
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.tools import tool_set

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
SETTINGS = Settings(
    openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1", model_map="claude-gpt4-sampler=gpt-4.1"
)
# Cases sent with the current API version header (which rejects sampling parameters).
NEW_API_CASES = frozenset({"sampling_rejected_new_api"})
DEFAULT_REQUEST = b'{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hi"}]}'


def _cases(folder: str, suffix: str) -> list[str]:
    return sorted(p.name.removesuffix(suffix) for p in (FIXTURES / folder).glob(f"*{suffix}"))


def _error(exc: GatewayError) -> dict[str, Any]:
    return {"error": {"status": exc.status_code, "type": exc.error_type, "message": exc.message}}


def _check(actual: Any, expected_path: Path) -> None:
    """Compare with the golden (parsed JSON, not bytes); rewrite it instead when UPDATE_GOLDENS=1."""
    if UPDATE or not expected_path.exists():
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        assert UPDATE, f"golden {expected_path.name} was missing and has been written: review it and rerun"
    assert actual == json.loads(expected_path.read_text())


def _translate_request(raw: bytes, case: str) -> Any:
    req = decode_request(raw, fields.MESSAGES)
    version = NEW_API_VERSION if case in NEW_API_CASES else "2023-06-01"
    return to_responses_request(req, tool_set(req.tools), SETTINGS.profile(req.model), api_version=version)


@pytest.mark.parametrize("case", _cases("requests", ".anthropic.json"))
def test_request_golden(case: str) -> None:
    raw = (FIXTURES / "requests" / f"{case}.anthropic.json").read_bytes()
    try:
        actual: Any = json.loads(msgspec.json.encode(_translate_request(raw, case).body))
    except GatewayError as exc:
        actual = _error(exc)
    _check(actual, FIXTURES / "requests" / f"{case}.responses.json")


@pytest.mark.parametrize("case", _cases("responses", ".responses.json"))
def test_response_golden(case: str) -> None:
    folder = FIXTURES / "responses"
    request_path = folder / f"{case}.request.json"
    raw_request = request_path.read_bytes() if request_path.exists() else DEFAULT_REQUEST
    translation = _translate_request(raw_request, case)
    response = r.RESPONSE_DECODER.decode((folder / f"{case}.responses.json").read_bytes())
    try:
        actual: Any = to_anthropic_message(
            response, translation.reply, model=json.loads(raw_request)["model"], context_window=SETTINGS.context_window
        )
    except GatewayError as exc:
        actual = _error(exc)
    _check(actual, folder / f"{case}.anthropic.json")


def test_every_request_case_has_its_golden() -> None:
    inputs = set(_cases("requests", ".anthropic.json"))
    outputs = set(_cases("requests", ".responses.json"))
    assert inputs == outputs and len(inputs) >= 30
