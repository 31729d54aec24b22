"""The per-tool-array cache: identical arrays are translated once, invalid ones are rejected every time."""

from __future__ import annotations

import json

import msgspec
import pytest

from messages_bridge.errors import InvalidRequestError
from messages_bridge.translate import tools as t

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
    assert bytes(bad) not in t._TOOL_SETS


def test_cache_is_bounded() -> None:
    for i in range(t.TOOL_SET_CACHE + 5):
        t.tool_set(_raw([{"name": f"tool_{i}"}]))
    assert len(t._TOOL_SETS) == t.TOOL_SET_CACHE


def test_one_request_asking_again_skips_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _raw([{"name": "only_once"}])
    lookups: list[msgspec.Raw] = []
    real = t._lookup

    def counting(r: msgspec.Raw) -> t.ToolSet:
        lookups.append(r)
        return real(r)

    monkeypatch.setattr(t, "_lookup", counting)
    first = t.tool_set(raw)
    assert t.tool_set(raw) is first and t.tool_set(raw) is first
    assert len(lookups) == 1
    equal_but_new = _raw([{"name": "only_once"}])
    assert t.tool_set(equal_but_new) is first and len(lookups) == 2  # a new object is looked up (and found)
