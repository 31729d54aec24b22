"""Thinking signatures carry the upstream's reasoning item whatever its id looks like (ids are data)."""

from __future__ import annotations

import msgspec
import pytest

from messages_bridge.app.body import decode_request
from messages_bridge.config import Settings
from messages_bridge.protocol import request_fields as fields
from messages_bridge.translate.request import to_responses_request
from messages_bridge.translate.signatures import decode_signature, encode_signature
from messages_bridge.translate.tools import tool_set

SETTINGS = Settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")
COPILOT_ID = "oxX2a9" * 70  # Copilot's reasoning ids are long opaque blobs, not `rs_…`


def _replayed(signature: str) -> list[dict[str, object]]:
    thinking = {"type": "thinking", "thinking": "Plan.", "signature": signature}
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "Again"},
    ]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "thinking": {"type": "adaptive"}, "messages": turns}
    req = decode_request(msgspec.json.encode(body), fields.MESSAGES)
    translation = to_responses_request(req, tool_set(req.tools), SETTINGS.profile(req.model), api_version="2023-06-01")
    items = translation.body["input"]
    return [dict(i) for i in items if i["type"] == "reasoning"]


@pytest.mark.parametrize("item_id", ["rs_68a2", COPILOT_ID])
def test_any_item_id_round_trips(item_id: str) -> None:
    ref = decode_signature(encode_signature(item_id, "enc"))
    assert ref is not None and (ref.id, ref.ec) == (item_id, "enc")
    assert _replayed(encode_signature(item_id, "enc")) == [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Plan."}],
            "encrypted_content": "enc",
            "id": item_id,
        }
    ]


def test_an_item_without_id_is_replayed_without_one() -> None:
    assert _replayed(encode_signature("", "enc")) == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan."}], "encrypted_content": "enc"}
    ]


def test_an_empty_signature_replays_nothing() -> None:
    """Reasoning without encrypted content (LM Studio) was shown with an empty signature: nothing to carry back."""
    assert decode_signature("") is None and _replayed("") == []
