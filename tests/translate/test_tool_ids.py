"""Tool ids the client sees: the upstream's when usable, else minted `toolu_` ids, deterministic and unique, and
replayed as they are on the next turn (so a minted id pairs the call with its result upstream)."""

from __future__ import annotations

import re

import msgspec

from messages_bridge.app.body import decode_request
from messages_bridge.config import Settings
from messages_bridge.protocol import request_fields as fields
from messages_bridge.translate.request import to_responses_request
from messages_bridge.translate.tool_ids import ToolIds, minted_id
from messages_bridge.translate.tools import tool_set

ANTHROPIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SETTINGS = Settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")


def test_usable_ids_pass_through_once() -> None:
    ids = ToolIds("resp_1")
    assert ids.client_id("call_abc", 0) == "call_abc"
    assert ids.client_id("call_abc", 1) == minted_id("resp_1", 1, "call_abc")


def test_unusable_ids_are_minted_uniquely_and_deterministically() -> None:
    upstream = ["", "", "call id", "x" * 65, "ünïcode", "call_1", "call_1"]
    first = [ToolIds("resp_1").client_id(c, n) for n, c in enumerate(upstream)]
    ids = ToolIds("resp_1")
    given = [ids.client_id(c, n) for n, c in enumerate(upstream)]
    assert all(ANTHROPIC_ID.fullmatch(i) for i in given) and len(set(given)) == len(given)
    assert given[5] == "call_1" and all(i.startswith("toolu_") for i in given[:5] + given[6:])
    assert [ToolIds("resp_1").client_id(c, n) for n, c in enumerate(upstream)][:1] == first[:1]
    assert ToolIds("resp_2").client_id("", 0) != given[0]  # another answer, another id


def test_an_upstream_id_imitating_a_minted_one_still_gives_unique_ids() -> None:
    ids = ToolIds("resp_1")
    imitation = minted_id("resp_1", 1, "")
    assert ids.client_id(imitation, 0) == imitation
    second = ids.client_id("", 1)
    assert second != imitation and ANTHROPIC_ID.fullmatch(second)


def test_a_minted_id_is_the_call_id_of_both_halves_on_the_next_turn() -> None:
    minted = minted_id("resp_1", 0, "")
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": minted, "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": minted, "content": "18C"}]},
        ],
    }
    req = decode_request(msgspec.json.encode(body), fields.MESSAGES)
    translation = to_responses_request(req, tool_set(req.tools), SETTINGS.profile(req.model), api_version="2023-06-01")
    items = translation.body["input"]
    assert [i.get("call_id") for i in items if i.get("type") in ("function_call", "function_call_output")] == [
        minted,
        minted,
    ]
