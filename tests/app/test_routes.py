"""Through the app: count_tokens (upstream count and local fallback), models, health probes and client auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.protocol import request_fields as fields
from messages_bridge.translate.tokens import IMAGE_TOKENS, estimate_input_tokens
from messages_bridge.translate.tools import tool_set
from tests.conftest import GATEWAY, FakeUpstream

AppFactory = Callable[[Settings], Any]
BODY: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
COUNT: dict[str, Any] = {
    "model": "claude-opus-4-8",
    "system": "You are a careful assistant.",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        }
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ],
}


@pytest.fixture
async def strict_client(
    app_factory: AppFactory, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_factory(make_settings(max_retries=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        yield http


# ---- count_tokens --------------------------------------------------------------------------------------------------


async def test_count_tokens_uses_the_upstream_count(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    upstream.script.push(Reply(json_body={"object": "response.input_tokens", "input_tokens": 4242}))
    reply = await client.post("/v1/messages/count_tokens", json=COUNT)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"input_tokens": 4242}
    sent = upstream.script.received[-1]
    assert sent.path == "/v1/responses/input_tokens"
    assert sent.body["instructions"] == COUNT["system"] and sent.body["tools"][0]["name"] == "get_weather"
    assert "max_output_tokens" not in sent.body and "store" not in sent.body


async def test_count_tokens_default_simulator_count(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    reply = await client.post("/v1/messages/count_tokens", json=COUNT)
    assert reply.status_code == 200 and reply.json()["input_tokens"] > 1


@pytest.mark.parametrize("status", [404, 405])
async def test_count_tokens_falls_back_to_the_estimate(
    client: httpx.AsyncClient, upstream: FakeUpstream, status: int
) -> None:
    upstream.script.push(Reply(status=status, json_body={"error": {"message": "Not found", "code": None}}))
    reply = await client.post("/v1/messages/count_tokens", json=COUNT)
    assert reply.status_code == 200, reply.text
    expected = _estimate(COUNT)
    assert reply.json() == {"input_tokens": expected}
    assert expected > IMAGE_TOKENS  # the image, the system prompt, the text and the tool all count


def _estimate(body: dict[str, Any]) -> int:
    req = fields.COUNT_TOKENS.decode(httpx.Request("POST", "/", json=body).content).request
    return estimate_input_tokens(req, tool_set(req.tools))


def test_estimate_counts_every_part() -> None:
    def estimate(**changes: Any) -> int:
        body = {**COUNT, **changes}
        return _estimate(body)

    full = estimate()
    assert estimate(system=None) < full
    assert estimate(tools=None) < full
    assert estimate(messages=[{"role": "user", "content": "What is in this picture?"}]) <= full - IMAGE_TOKENS


async def test_count_tokens_other_upstream_errors_are_reported(
    strict_client: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(status=500, json_body={"error": {"message": "boom", "code": "server_error"}}))
    reply = await strict_client.post("/v1/messages/count_tokens", json=COUNT)
    assert reply.status_code == 500 and reply.json()["error"]["type"] == "api_error"


async def test_count_tokens_validates_like_messages(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    reply = await client.post("/v1/messages/count_tokens", json={"model": "claude-x"})
    assert reply.status_code == 400 and "messages" in reply.json()["error"]["message"]
    assert upstream.requests == []


# ---- models and probes ---------------------------------------------------------------------------------------------


async def test_models_list_and_get(app_factory: AppFactory, make_settings: Callable[..., Settings]) -> None:
    app = await app_factory(make_settings(model_map="claude-custom-team=gpt-5-mini"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        listing = (await http.get("/v1/models", params={"limit": 1000})).json()
        ids = [m["id"] for m in listing["data"]]
        assert ids and all(i.startswith("claude") for i in ids) and "claude-custom-team" in ids
        assert listing["has_more"] is False and (listing["first_id"], listing["last_id"]) == (ids[0], ids[-1])
        assert all(m["type"] == "model" and m["display_name"] and m["lifecycle"] == "active" for m in listing["data"])
        one = await http.get(f"/v1/models/{ids[0]}")
        assert one.status_code == 200 and one.json()["id"] == ids[0]
        missing = await http.get("/v1/models/gpt-nope")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


async def test_health_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


# ---- client auth ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def keyed(app_factory: AppFactory, make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_factory(make_settings(api_keys="gw-key-one, gw-key-two"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        yield http


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "gw-key-one"},
        {"authorization": "Bearer gw-key-two"},
        {"authorization": "bearer gw-key-one"},
        {"x-api-key": "gw-key-two", "authorization": "Bearer wrong"},
    ],
)
async def test_configured_keys_are_accepted(
    keyed: httpx.AsyncClient, upstream: FakeUpstream, headers: dict[str, str]
) -> None:
    reply = await keyed.post("/v1/messages", json=BODY, headers=headers)
    assert reply.status_code == 200, reply.text
    received = upstream.script.received[-1].headers
    assert received["authorization"] == "Bearer sk-upstream-secret" and "x-api-key" not in received


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "gw-key-three"},
        {"authorization": "Bearer "},
        {"authorization": "Basic gw-key-one"},
        {"x-api-key": "sk-upstream-secret"},
        {"x-api-key": "gw-key-on"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/claude-opus-4-8"),
    ],
)
async def test_missing_or_wrong_keys_are_rejected(
    keyed: httpx.AsyncClient, upstream: FakeUpstream, headers: dict[str, str], method: str, path: str
) -> None:
    reply = await keyed.request(method, path, json=BODY if method == "POST" else None, headers=headers)
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"]["type"] == "authentication_error"
    assert "sk-upstream-secret" not in reply.text and "gw-key" not in reply.text
    assert upstream.requests == []


async def test_probes_need_no_key(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/healthz")).status_code == 200


async def test_upstream_key_is_never_echoed(client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    for reply in (
        await client.post("/v1/messages", json=BODY),
        await client.get("/v1/models"),
        await client.post("/v1/messages", json={"model": "x"}),
    ):
        assert "sk-upstream-secret" not in reply.text
        assert all("sk-upstream-secret" not in v for v in reply.headers.values())
