"""Routing through the app, with three fake upstreams on 127.0.0.1: each rule and condition, direct names,
unknown models (404, never a silent default), /v1/models paging and lookups, and Azure's header and api-version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import FakeUpstream
from tests.routing.conftest import HELLO

Make = Callable[..., Any]


def three(fakes: dict[str, FakeUpstream], routes: str, extra: str = "") -> str:
    upstreams = "".join(
        f"  {n}: {{base_url: '{f.base_url}', api_keys: ['${{KEY_{n.upper()}:-sk-{n}-key}}']}}\n"
        for n, f in fakes.items()
    )
    return f"upstreams:\n{upstreams}routes:\n{routes}{extra}"


ROUTES = """
  - match: "claude-haiku-*"
    targets: [a/gpt-5-mini]
  - match: "*"
    when: {header: {x-team: "research-*"}}
    targets: [c/gpt-5-research]
  - match: "*"
    when: {min_input_tokens: 2000}
    targets: [c/gpt-4.1]
  - match: "claude-*"
    when: {thinking: true}
    targets: [b/gpt-5-thinking]
  - match: "claude-*"
    targets: [b/gpt-5]
  - match: "my-model"
    targets: [a/gpt-5.1]
"""


def served_by(fakes: dict[str, FakeUpstream]) -> list[tuple[str, str]]:
    """(upstream, model) of every request the fakes received, in upstream order."""
    return [(name, body["model"]) for name, fake in fakes.items() for body in fake.requests]


@pytest.fixture(autouse=True)
def _clear(fakes: dict[str, FakeUpstream]) -> None:
    for fake in fakes.values():
        fake.script.received.clear()


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"model": "claude-haiku-4-5-20251001"}, {}, ("a", "gpt-5-mini")),
        ({}, {}, ("b", "gpt-5")),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, {}, ("b", "gpt-5-thinking")),
        ({"thinking": {"type": "adaptive"}}, {}, ("b", "gpt-5-thinking")),
        ({"messages": [{"role": "user", "content": "word " * 3000}]}, {}, ("c", "gpt-4.1")),
        ({}, {"x-team": "research-ml"}, ("c", "gpt-5-research")),
        ({}, {"x-team": "sales"}, ("b", "gpt-5")),
        ({"model": "claude-haiku-4-5"}, {"x-team": "research-ml"}, ("a", "gpt-5-mini")),  # first match wins
        ({"model": "my-model"}, {}, ("a", "gpt-5.1")),
    ],
)
async def test_each_rule_and_condition(
    routed: Make, fakes: dict[str, FakeUpstream], body: dict[str, Any], headers: dict[str, str], expected: Any
) -> None:
    gateway = await routed(three(fakes, ROUTES))
    reply = await gateway.post(HELLO | body, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == (HELLO | body)["model"]  # the client sees the name it asked for
    assert served_by(fakes) == [expected]


async def test_streams_and_count_tokens_are_routed_too(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(three(fakes, ROUTES))
    haiku = HELLO | {"model": "claude-haiku-4-5"}
    async with gateway.http.stream("POST", "/v1/messages", json=haiku | {"stream": True}) as reply:
        assert reply.status_code == 200
        assert "message_stop" in (await reply.aread()).decode()
    counted = await gateway.http.post("/v1/messages/count_tokens", json={k: haiku[k] for k in ("model", "messages")})
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    assert served_by(fakes) == [("a", "gpt-5-mini"), ("a", "gpt-5-mini")]
    assert fakes["a"].script.received[1].path == "/v1/responses/input_tokens"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unknown_model_is_a_404_naming_it(routed: Make, fakes: dict[str, FakeUpstream], stream: bool) -> None:
    gateway = await routed(three(fakes, ROUTES))
    reply = await gateway.post(HELLO | {"model": "gpt-4o", "stream": stream})
    assert reply.status_code == 404
    assert reply.json()["error"] == {"type": "not_found_error", "message": "model: gpt-4o"}
    counted = await gateway.http.post("/v1/messages/count_tokens", json={"model": "gpt-4o", "messages": []})
    assert counted.status_code == 404
    assert served_by(fakes) == []


async def test_direct_names_when_allowed(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(three(fakes, ROUTES, "allow_direct: true\n"))
    assert (await gateway.post(HELLO | {"model": "c/gpt-5.1-codex"})).status_code == 200
    assert served_by(fakes) == [("c", "gpt-5.1-codex")]
    assert (await gateway.post(HELLO | {"model": "zz/gpt-5"})).status_code == 404  # not a configured upstream
    closed = await routed(three(fakes, ROUTES))
    assert (await closed.post(HELLO | {"model": "c/gpt-5.1-codex"})).status_code == 404


async def test_a_profile_shapes_the_request_for_its_target(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    models = "models:\n  gpt-5: {reasoning_efforts: [low, medium, high, xhigh], max_output_tokens: 32000}\n"
    gateway = await routed(three(fakes, '  - match: "*"\n    targets: [a/gpt-5]\n', models))
    body = HELLO | {"max_tokens": 64000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}
    assert (await gateway.post(body)).status_code == 200
    sent = fakes["a"].requests[0]
    assert sent["max_output_tokens"] == 32000
    assert sent["reasoning"]["effort"] == "xhigh"


async def test_the_context_window_of_the_target_is_quoted(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    from messages_bridge.demo.server import Reply

    models = "models:\n  gpt-4.1: {reasoning_efforts: [], context_window: 1047576}\n"
    gateway = await routed(three(fakes, '  - match: "*"\n    targets: [a/gpt-4.1]\n', models))
    error = {
        "error": {"message": "Input too long.", "code": "context_length_exceeded", "type": "invalid_request_error"}
    }
    fakes["a"].script.push(Reply(status=400, json_body=error))
    reply = await gateway.post()
    assert reply.status_code == 400
    assert "> 1047576 maximum" in reply.json()["error"]["message"]


LISTED = """
  - match: "claude-haiku-4-5"
    targets: [a/gpt-5-mini, b/gpt-5-mini]
  - match: "claude-sonnet-4-5"
    targets: [b/gpt-5]
  - match: "claude-opus-4-8"
    targets: [b/gpt-5]
  - match: "claude-*"
    targets: [b/gpt-5]
"""


async def test_models_lists_concrete_and_direct_names_with_paging(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(three(fakes, LISTED, "allow_direct: true\n"))
    full = (await gateway.http.get("/v1/models")).json()
    ids = [m["id"] for m in full["data"]]
    assert ids == [
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-opus-4-8",
        "a/gpt-5-mini",
        "b/gpt-5-mini",
        "b/gpt-5",
    ]
    assert full["data"][0]["display_name"] == "claude-haiku-4-5 → a/gpt-5-mini, b/gpt-5-mini"
    assert full["has_more"] is False and full["first_id"] == ids[0] and full["last_id"] == ids[-1]
    first = (await gateway.http.get("/v1/models", params={"limit": 2})).json()
    assert [m["id"] for m in first["data"]] == ids[:2] and first["has_more"] is True
    second = (await gateway.http.get("/v1/models", params={"limit": 2, "after_id": first["last_id"]})).json()
    assert [m["id"] for m in second["data"]] == ids[2:4] and second["has_more"] is True
    last = (await gateway.http.get("/v1/models", params={"limit": 3, "after_id": ids[3]})).json()
    assert [m["id"] for m in last["data"]] == ids[4:] and last["has_more"] is False
    back = (await gateway.http.get("/v1/models", params={"limit": 2, "before_id": ids[4]})).json()
    assert [m["id"] for m in back["data"]] == ids[2:4] and back["has_more"] is True
    start = (await gateway.http.get("/v1/models", params={"limit": 5, "before_id": ids[2]})).json()
    assert [m["id"] for m in start["data"]] == ids[:2] and start["has_more"] is False
    assert (await gateway.http.get("/v1/models", params={"limit": 0})).status_code == 400


async def test_model_lookup_answers_every_accepted_name(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(three(fakes, LISTED, "allow_direct: true\n"))
    for name in ("claude-haiku-4-5", "claude-fable-9", "b/gpt-5", "c/anything"):
        reply = await gateway.http.get("/v1/models/" + name.replace("/", "%2F"))
        assert reply.status_code == 200, name
        assert reply.json()["id"] == name
    missing = await gateway.http.get("/v1/models/gpt-4o")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert (await gateway.http.get("/v1/models/zz%2Fgpt-5")).status_code == 404


def test_the_sdk_lists_and_retrieves_a_direct_name(fakes: dict[str, FakeUpstream], config_path: Any) -> None:
    """The official SDK percent-encodes the slash of a direct name; paging follows `after_id`."""
    import anthropic

    from messages_bridge.app.factory import create_app
    from messages_bridge.config import Settings
    from tests.servers import serving

    settings = Settings(config=config_path(three(fakes, LISTED, "allow_direct: true\n")), shutdown_grace=1.0)
    with serving(create_app(settings)) as server, anthropic.Anthropic(api_key="unused", base_url=server.url) as sdk:
        assert sdk.models.retrieve("b/gpt-5").id == "b/gpt-5"
        assert len([m.id for m in sdk.models.list(limit=2)]) == 6
        with pytest.raises(anthropic.NotFoundError):
            sdk.models.retrieve("zz/gpt-5")


async def test_azure_gets_the_api_key_header_and_api_version(
    routed: Make, fakes: dict[str, FakeUpstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_KEY", "azure-secret-key-0001")
    config = f"""
        upstreams:
          az:
            kind: azure
            base_url: {fakes["a"].base_url}
            api_keys: ["${{AZURE_KEY}}"]
            api_version: 2025-04-01-preview
          v1: {{kind: azure, base_url: "{fakes["b"].base_url}", api_keys: ["${{AZURE_KEY}}"]}}
        routes:
          - {{match: "claude-haiku-*", targets: [v1/gpt-5-mini]}}
          - {{match: "*", targets: [az/my-gpt5-deployment]}}
    """
    gateway = await routed(config)
    assert (await gateway.post()).status_code == 200
    assert (await gateway.post(HELLO | {"model": "claude-haiku-4-5"})).status_code == 200
    dated, v1 = fakes["a"].script.received[0], fakes["b"].script.received[0]
    assert dated.headers["api-key"] == "azure-secret-key-0001" and "authorization" not in dated.headers
    assert dated.path == "/v1/responses"
    assert dated.body["model"] == "my-gpt5-deployment"
    assert v1.headers["api-key"] == "azure-secret-key-0001" and "authorization" not in v1.headers
    assert fakes["a"].query == ["api-version=2025-04-01-preview"]
    assert fakes["b"].query == [""]


async def test_azure_content_filter_is_an_invalid_request(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    from messages_bridge.demo.server import Reply

    gateway = await routed(
        f"upstreams:\n  az: {{kind: azure, base_url: '{fakes['a'].base_url}'}}\nallow_direct: true\n"
    )
    filtered = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"hate": {"filtered": True}},
            },
        }
    }
    fakes["a"].script.push(Reply(status=400, json_body=filtered))
    reply = await gateway.post(HELLO | {"model": "az/gpt-5"})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert "content management policy" in reply.json()["error"]["message"]
    assert reply.headers["x-should-retry"] == "false"


AZURE_ERRORS = [
    (
        429,
        {
            "error": {
                "code": "429",
                "message": "Requests to the Responses_Create Operation have exceeded the token rate "
                "limit of your current tier. Please retry after 6 seconds.",
            }
        },
        {"retry-after": "6"},
        "rate_limit_error",
    ),
    (
        401,
        {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}},
        {},
        "authentication_error",
    ),
    (
        404,
        {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}},
        {},
        "not_found_error",
    ),
    (
        400,
        {
            "error": {
                "code": "context_length_exceeded",
                "message": "This model's maximum context length is 128000 "
                "tokens. However, your messages resulted in 130000 tokens.",
            }
        },
        {},
        "invalid_request_error",
    ),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind"), AZURE_ERRORS)
async def test_azure_error_bodies_map_to_anthropic_errors(
    routed: Make, fakes: dict[str, FakeUpstream], status: int, body: Any, headers: dict[str, str], kind: str
) -> None:
    from messages_bridge.demo.server import Reply

    gateway = await routed(
        f"upstreams:\n  az: {{kind: azure, base_url: '{fakes['a'].base_url}'}}\nallow_direct: true\n"
    )
    fakes["a"].script.push(Reply(status=status, json_body=body, headers=headers))
    reply = await gateway.post(HELLO | {"model": "az/gpt-5"})
    assert reply.status_code == status
    assert reply.json()["error"]["type"] == kind
    if status == 429:
        assert reply.headers["retry-after"] == "6"
    if status == 400:
        assert reply.json()["error"]["message"] == "prompt is too long: 130000 tokens > 128000 maximum"


async def test_azure_output_content_filter_is_a_refusal(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    from messages_bridge.demo.server import Reply

    gateway = await routed(
        f"upstreams:\n  az: {{kind: azure, base_url: '{fakes['a'].base_url}'}}\nallow_direct: true\n"
    )
    filtered = {
        "id": "resp_f",
        "object": "response",
        "model": "gpt-5",
        "status": "incomplete",
        "incomplete_details": {"reason": "content_filter"},
        "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 0, "total_tokens": 5},
    }
    fakes["a"].script.push(Reply(json_body=filtered))
    reply = await gateway.post(HELLO | {"model": "az/gpt-5"})
    assert reply.status_code == 200 and reply.json()["stop_reason"] == "refusal"


async def test_static_headers_reach_the_upstream(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(
        f"upstreams:\n  o: {{base_url: '{fakes['a'].base_url}', api_keys: [k-0123456789], "
        "headers: {OpenAI-Organization: org-123, OpenAI-Project: proj_9}}\nallow_direct: true\n"
    )
    assert (await gateway.post(HELLO | {"model": "o/gpt-5"})).status_code == 200
    sent = fakes["a"].script.received[0].headers
    assert (sent["openai-organization"], sent["openai-project"]) == ("org-123", "proj_9")
    assert sent["authorization"] == "Bearer k-0123456789"


async def test_the_profile_says_which_targets_have_hosted_web_search(
    routed: Make, fakes: dict[str, FakeUpstream]
) -> None:
    """`web_search: true` sends the hosted tool; a model without it (and no backend) answers `unavailable` in-band."""
    models = "models:\n  gpt-5-search: {web_search: true}\n"
    routes = '  - match: "claude-haiku-*"\n    targets: [a/gpt-5-mini]\n  - match: "*"\n    targets: [a/gpt-5-search]\n'
    gateway = await routed(three(fakes, routes, models))
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    body = HELLO | {"tools": [tool]}
    assert (await gateway.post(body)).status_code == 200
    assert [t["type"] for t in fakes["a"].requests[0]["tools"]] == ["web_search"]
    off = await gateway.post(
        body | {"model": "claude-haiku-4-5", "tool_choice": {"type": "tool", "name": "web_search"}}
    )
    assert off.status_code == 200
    assert off.json()["content"][1]["content"]["error_code"] == "unavailable"
    assert len(fakes["a"].requests) == 1  # answered by the gateway, nothing sent upstream
