"""The per-tool-array cache: identical arrays are translated once, invalid ones are rejected every time."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from messages_bridge.app.body import decode_request
from messages_bridge.config import Settings
from messages_bridge.errors import InvalidRequestError
from messages_bridge.protocol import request_fields as fields
from messages_bridge.protocol.responses import ResponsesRequest
from messages_bridge.translate import request
from messages_bridge.translate import tools as t

SETTINGS = Settings(openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")
TOOLS = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}},
    {"name": "x" * 80, "input_schema": {"type": "object"}},
]


def _raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(value).encode())


def test_identical_arrays_share_one_translation() -> None:
    first, second = t.tool_set(_raw(TOOLS)), t.tool_set(_raw(TOOLS))
    assert first is second
    upstream = json.loads(bytes(first.upstream))
    assert [u["name"] for u in upstream] == ["Bash", t.upstream_name("x" * 80)]
    assert all(u["strict"] is False and u["type"] == "function" for u in upstream)
    assert first.names == {t.upstream_name("x" * 80): "x" * 80}
    assert first.chars == sum(len(x["name"]) + len(x.get("description", "")) for x in TOOLS) + sum(
        len(json.dumps(x["input_schema"])) for x in TOOLS
    )


@pytest.mark.parametrize("value", [None, []])
def test_null_and_empty_mean_no_tools(value: object) -> None:
    assert t.tool_set(_raw(value)) is t.NO_TOOLS
    assert t.tool_set(msgspec.UNSET) is t.NO_TOOLS


def test_invalid_arrays_are_rejected_every_time_and_never_cached() -> None:
    bad = _raw([{"name": "ok", "input_schema": {}}, {"description": "no name"}])
    for _ in range(2):
        with pytest.raises(InvalidRequestError, match=r"^tools\[1\]: Object missing required field `name`"):
            t.tool_set(bad)
    assert t.digest(bad) not in t.TOOL_SETS


def test_cache_is_keyed_by_a_digest_and_bounded_in_bytes() -> None:
    schema = {"type": "object", "description": "d" * 100_000}  # ~100 KB per array: 4 MiB hold about 40
    for i in range(60):
        t.tool_set(_raw([{"name": f"tool_{i}", "input_schema": schema}]))
    assert all(len(key) == 32 for key in t.TOOL_SETS)  # never the array's bytes
    assert t.TOOL_SETS.currsize <= t.TOOL_CACHE_BYTES
    assert 30 <= len(t.TOOL_SETS) < 60
    assert t.digest(_raw([{"name": "tool_59", "input_schema": schema}])) in t.TOOL_SETS  # least recent go first
    assert t.digest(_raw([{"name": "tool_0", "input_schema": schema}])) not in t.TOOL_SETS


def test_an_array_too_big_to_keep_is_translated_but_not_cached() -> None:
    raw = _raw([{"name": "huge", "input_schema": {"type": "object", "description": "d" * t.TOOL_SET_MAX_BYTES}}])
    assert t.tool_set(raw).count == 1
    assert t.digest(raw) not in t.TOOL_SETS


def test_a_tool_set_holds_nothing_decoded_from_the_body() -> None:
    search = {"type": "web_search_20250305", "name": "web_search", "user_location": {"type": "approximate"}}
    body = msgspec.json.encode({"tools": [{"name": "f", "input_schema": {"type": "object"}}, search]})
    unreferenced = sys.getrefcount(body)
    raw = msgspec.json.decode(body, type=dict[str, msgspec.Raw])["tools"]  # references `body`, like a request
    assert sys.getrefcount(body) == unreferenced + 1
    tools = t.tool_set(raw)
    assert tools.count == 2 and tools.web_search is not None
    assert isinstance(tools.web_search.user_location, msgspec.Raw)
    del raw
    assert sys.getrefcount(body) == unreferenced  # the set (kept in the cache) holds no part of the body


def test_one_request_translates_its_tools_once() -> None:
    """Only the routes call `tool_set`; everything after them is handed the result."""
    src = Path(t.__file__).parents[1]
    callers = sorted(
        str(path.relative_to(src)) for path in src.rglob("*.py") if "tool_set(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["app/routes.py", "translate/tools.py"]
    routes = (src / "app" / "routes.py").read_text(encoding="utf-8")
    assert routes.count("tool_set(req.tools)") == 2  # one per route that decodes a conversation


def test_a_kept_set_weighs_what_it_holds() -> None:
    """The web_search tool keeps no reference to the array's bytes (300 KB of an ignored field here)."""
    search = {"type": "web_search_20250305", "name": "web_search", "user_location": {"type": "approximate"}}
    raw = _raw([{"name": "f", "cache_control": {"note": "n" * 300_000}}, search])
    tracemalloc.start()
    try:
        tools = t.tool_set(raw)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert tools.web_search is not None and tools.count == 2
    assert held < 64 * 1024 and tools.held_bytes() < 64 * 1024  # bytes: the set, not the 300 KB array


def _with_user(user_id: str) -> ResponsesRequest:
    """The upstream body of a one-message request from `user_id`."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    req = decode_request(msgspec.json.encode(body | {"metadata": {"user_id": user_id}}), fields.MESSAGES)
    return request.to_responses_request(req, t.tool_set(req.tools), SETTINGS.profile(req.model), api_version="").body


def test_name_mapping_and_user_hashing_keep_nothing_across_requests() -> None:
    """Keyed by client strings of any length, a cache of them would grow with what clients send: none is kept (not
    even the last one: 16 distinct 128 KB names and user ids leave less than one of them behind)."""
    size = 128 * 1024
    _with_user("warm-up")  # first-use allocations (imports, profiles) are not what this measures
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(16):
            assert len(t.upstream_name(f"n{i:02}." * (size // 4))) <= t.MAX_NAME
            hashed = _with_user(f"user-{i}-" + "u" * size)["safety_identifier"]
            assert isinstance(hashed, str) and hashed.startswith("mb_") and len(hashed) < 64
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < size, grown


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The arrays `tools.digest` hashes from now on."""
    seen: list[bytes] = []
    real = t.digest

    def counted(raw: msgspec.Raw) -> bytes:
        seen.append(bytes(raw))
        return real(raw)

    monkeypatch.setattr(t, "digest", counted)
    return seen


def test_a_repeat_of_the_last_array_finds_its_set_without_hashing(hashed: list[bytes]) -> None:
    first = t.tool_set(_raw(TOOLS))
    hashed.clear()
    assert t.tool_set(_raw(TOOLS)) is first
    assert hashed == []  # the same bytes as last time: the remembered key
    other = [{**TOOLS[0], "name": "Bas_"}, TOOLS[1]]  # same length, other bytes
    assert len(json.dumps(other)) == len(json.dumps(TOOLS))
    second = t.tool_set(_raw(other))
    assert second is not first and json.loads(bytes(second.upstream))[0]["name"] == "Bas_"
    assert t.tool_set(_raw(TOOLS)) is first  # alternating arrays each get their own set
    assert len(hashed) == 2


def test_the_remembered_array_follows_evictions_and_stays_bounded(hashed: list[bytes]) -> None:
    first = t.tool_set(_raw(TOOLS))
    t.TOOL_SETS.clear()  # evicted while remembered: translated again, never a stale or missing set
    again = t.tool_set(_raw(TOOLS))
    assert again == first and t.digest(_raw(TOOLS)) in t.TOOL_SETS
    t.tool_set(_raw([{"name": "huge", "input_schema": {"description": "d" * t.TOOL_SET_MAX_BYTES}}]))
    hashed.clear()
    assert t.tool_set(_raw(TOOLS)) is again and hashed == []  # too big to cache, the huge one is not remembered
