"""Generated hostile input: thousands of malformed requests, never a 5xx, every 4xx a valid Anthropic error.

Inputs: a real Claude Code capture with one field replaced by a value of another type (or removed), random
JSON shapes, truncated bodies, invalid UTF-8, huge numbers, deep nesting, odd headers, methods and paths. The
examples run derandomized, so CI is reproducible; set FUZZ_EXAMPLES to run more. Each search runs in full in the
whole suite (marked slow) and as a `_quick` twin of the same check with a few dozen examples (QUICK) for the quick loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.config import Settings
from tests.conftest import GATEWAY

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
SMALL = "messages_interactive_title_structured_output.json"
LARGE = "messages_main_after_bash_tool_result.json"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
QUICK = settings(FUZZ, max_examples=40)
JSONValue = Any


def capture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((CAPTURES / name).read_text())["request"]["body"]
    body["stream"] = False  # one JSON answer to check; the streaming path gets its own examples below
    return body


def paths(value: JSONValue, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every JSON path in `value` (object keys and array indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(value: JSONValue, path: tuple[Any, ...], new: JSONValue, *, delete: bool = False) -> JSONValue:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    head, rest = path[0], path[1:]
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = replaced(copy[head], rest, new, delete=delete)
    return copy


HUGE_NUMBERS = st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1, 1e308, -1e308, 1e-320, 0, -1, 2**31])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | HUGE_NUMBERS
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "array" else ('{"a":' * depth + "1" + "}" * depth)


@st.composite
def mutated_capture(draw: st.DrawFn, body: dict[str, Any]) -> bytes:
    all_paths = paths(body)
    path = draw(st.sampled_from(all_paths[1:]))
    if draw(st.booleans()) and path:
        return json.dumps(replaced(body, path, None, delete=True)).encode()
    return json.dumps(replaced(body, path, draw(JSON_VALUES))).encode()


@st.composite
def byte_faults(draw: st.DrawFn, body: dict[str, Any]) -> bytes:
    raw = json.dumps(body).encode()
    kind = draw(st.sampled_from(["truncate", "utf8", "garbage", "deep", "numbers", "empty"]))
    if kind == "truncate":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "utf8":
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80"]))
        text_at = raw.find(b'"text"')
        where = text_at + 9 if text_at > 0 and draw(st.booleans()) else at  # inside a string, or anywhere
        return raw[:where] + bad + raw[where:]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.sampled_from([64, 500, 990, 1100, 5000, 100_000]))
        field = draw(st.sampled_from(["messages", "metadata", "system", "tools", "tool_choice", "max_tokens"]))
        nest = nested(depth, draw(st.sampled_from(["array", "object"])))
        return json.dumps({**body, field: "__NEST__"}).replace('"__NEST__"', nest).encode()
    if kind == "numbers":
        field = draw(st.sampled_from(["max_tokens", "temperature", "top_p", "top_k"]))
        number = draw(st.sampled_from(["1e999999", "-1e999999", "123456789012345678901234567890", "1.5", "-0", "NaN"]))
        return json.dumps({**body, field: "__N__"}).replace('"__N__"', number).encode()
    return b""


ODD_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            [
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "application/json; charset=latin-1",
                "",
                "application/json;;",
                "*/*",
            ]
        ),
        "anthropic-version": st.sampled_from(["", "1999-01-01", "2023-06-01", "x" * 300, "2023-06-01,2024-01-01"]),
        "anthropic-beta": st.sampled_from(["", "nonsense", ",,,", "a" * 2000]),
        "request-id": st.sampled_from(["", "short", "x" * 500, "req_../../etc", "req_ok_123456789"]),
        "authorization": st.sampled_from(["", "Bearer", "Basic abc", "Bearer " + "k" * 1000]),
        "accept": st.sampled_from(["text/event-stream", "application/xml", ""]),
    },
)


def assert_well_formed(reply: httpx.Response) -> None:
    assert reply.status_code < 500, (reply.status_code, reply.text[:300])
    if reply.status_code >= 400:
        body = reply.json()
        assert set(body) == {"type", "error", "request_id"}, body
        assert body["type"] == "error"
        assert isinstance(body["error"]["type"], str) and body["error"]["type"].endswith(("_error", "_large"))
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert body["request_id"] == reply.headers["request-id"]
    elif reply.headers["content-type"].startswith("text/event-stream"):
        assert '"api_error"' not in reply.text and "event: message_start" in reply.text
    else:
        payload = reply.json()
        assert payload.get("type") in ("message", "model") or "input_tokens" in payload or "data" in payload


@pytest.fixture
async def gateway(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_factory(make_settings(max_body_bytes=2 * 1024 * 1024))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=30) as http:
        yield http


SMALL_WRONG_VALUES = mutated_capture(capture(SMALL))
LARGE_WRONG_VALUES = mutated_capture(capture(LARGE))
PATHS = st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"])
ODD_REQUESTS = {
    "headers": ODD_HEADERS,
    "stream": st.booleans(),
    "method": st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
    "path": st.sampled_from(
        ["/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/v1/models/%00", "/v1/x", "/"]
    ),
}


async def post_json(gateway: httpx.AsyncClient, body: bytes, path: str = "/v1/messages") -> None:
    assert_well_formed(await gateway.post(path, content=body, headers={"content-type": "application/json"}))


async def odd_request(
    gateway: httpx.AsyncClient, headers: dict[str, str], stream: bool, method: str, path: str
) -> None:
    body = {**capture(SMALL), "stream": stream}
    reply = await gateway.request(method, path, content=json.dumps(body).encode(), headers=headers)
    assert_well_formed(reply)


@pytest.mark.slow
@FUZZ
@given(body=SMALL_WRONG_VALUES)
async def test_any_field_of_a_real_request_with_a_wrong_value(gateway: httpx.AsyncClient, body: bytes) -> None:
    await post_json(gateway, body)


@QUICK
@given(body=SMALL_WRONG_VALUES)
async def test_any_field_of_a_real_request_with_a_wrong_value_quick(gateway: httpx.AsyncClient, body: bytes) -> None:
    await post_json(gateway, body)


@pytest.mark.slow
@settings(FUZZ, max_examples=max(EXAMPLES // 4, 20))
@given(body=LARGE_WRONG_VALUES)
async def test_any_field_of_a_large_tool_request_with_a_wrong_value(gateway: httpx.AsyncClient, body: bytes) -> None:
    await post_json(gateway, body)


@settings(QUICK, max_examples=10)
@given(body=LARGE_WRONG_VALUES)
async def test_any_field_of_a_large_tool_request_with_a_wrong_value_quick(
    gateway: httpx.AsyncClient, body: bytes
) -> None:
    await post_json(gateway, body)


@pytest.mark.slow
@FUZZ
@given(body=byte_faults(capture(SMALL)), path=PATHS)
async def test_broken_bytes(gateway: httpx.AsyncClient, body: bytes, path: str) -> None:
    await post_json(gateway, body, path)


@QUICK
@given(body=byte_faults(capture(SMALL)), path=PATHS)
async def test_broken_bytes_quick(gateway: httpx.AsyncClient, body: bytes, path: str) -> None:
    await post_json(gateway, body, path)


@pytest.mark.slow
@FUZZ
@given(value=JSON_VALUES, path=PATHS)
async def test_random_json_shapes(gateway: httpx.AsyncClient, value: JSONValue, path: str) -> None:
    assert_well_formed(await gateway.post(path, content=json.dumps(value).encode()))


@QUICK
@given(value=JSON_VALUES, path=PATHS)
async def test_random_json_shapes_quick(gateway: httpx.AsyncClient, value: JSONValue, path: str) -> None:
    assert_well_formed(await gateway.post(path, content=json.dumps(value).encode()))


@pytest.mark.slow
@FUZZ
@given(**ODD_REQUESTS)
async def test_odd_headers_methods_and_paths(
    gateway: httpx.AsyncClient, headers: dict[str, str], stream: bool, method: str, path: str
) -> None:
    await odd_request(gateway, headers, stream, method, path)


@QUICK
@given(**ODD_REQUESTS)
async def test_odd_headers_methods_and_paths_quick(
    gateway: httpx.AsyncClient, headers: dict[str, str], stream: bool, method: str, path: str
) -> None:
    await odd_request(gateway, headers, stream, method, path)


async def test_deep_nesting_is_a_400_not_a_crash(gateway: httpx.AsyncClient) -> None:
    """The fixed extreme case of the generator above: 100k-deep arrays and objects."""
    for kind in ("array", "object"):
        for field in ("messages", "metadata", "tools"):
            raw = json.dumps({**capture(SMALL), field: "__NEST__"}).replace('"__NEST__"', nested(100_000, kind))
            reply = await gateway.post("/v1/messages", content=raw.encode())
            assert reply.status_code == 400, (kind, field, reply.text[:200])
            assert_well_formed(reply)


async def test_invalid_utf8_in_the_output_schema_is_a_400(gateway: httpx.AsyncClient) -> None:
    """Found by the full `test_broken_bytes` search: the schema is kept raw, so its bytes are checked on decoding."""
    raw = json.dumps(capture(SMALL)).encode()
    at = raw.find(b'"additionalProperties"') + 1
    assert at > 0
    reply = await gateway.post("/v1/messages", content=raw[:at] + b"\xff" + raw[at:])
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"


async def test_invalid_utf8_is_a_400(gateway: httpx.AsyncClient) -> None:
    raw = json.dumps(capture(SMALL)).encode()
    at = raw.find(b'"text"') + 9
    reply = await gateway.post("/v1/messages", content=raw[:at] + b"\xff\xfe" + raw[at:])
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"
