"""The gateway answering web searches over HTTP: hosted (the fake upstream's search), gateway-run (a fake SearXNG on
127.0.0.1 and its failures) and off — every search failure in-band (HTTP 200), streaming = non-streaming, the
official SDK accumulating every answer, and a second turn sending the blocks back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.fake_searxng import SearxScript, create_searxng_app
from tests.observability.helpers import LogCapture, capture_logs
from tests.servers import ThreadedServer, serving
from tests.streamkit import check_grammar, fold, parse_sse
from tests.websearch.kit import subrequest

__all__ = ["capture_logs"]
JSON = dict[str, Any]
Post = Callable[..., Any]


@pytest.fixture
def searx() -> Iterator[tuple[ThreadedServer, SearxScript]]:
    script = SearxScript(slow_seconds=3.0)
    with serving(create_searxng_app(script)) as server:
        yield server, script


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


async def _both(http: httpx.AsyncClient, body: JSON) -> tuple[JSON, JSON]:
    """The streamed answer (grammar-checked, folded) and the non-streamed one, both HTTP 200."""
    streamed = await http.post("/v1/messages", json={**body, "stream": True})
    assert streamed.status_code == 200, streamed.text
    events = parse_sse(streamed.content)
    check_grammar(events)
    plain = await http.post("/v1/messages", json={k: v for k, v in body.items() if k != "stream"})
    assert plain.status_code == 200, plain.text
    return fold(events), plain.json()


async def _logged_gateway(
    make_settings: Any, app_factory: Any, capture_logs: Callable[..., LogCapture], searx: ThreadedServer
) -> tuple[Any, LogCapture]:
    """The app in gateway mode against the fake SearXNG, and its captured log lines."""
    settings = make_settings(web_search_backend_url=searx.url)
    logs = capture_logs(settings)
    return await app_factory(settings), logs


def _kinds(message: JSON) -> list[str]:
    return [b["type"] for b in message["content"]]


# ---- hosted ---------------------------------------------------------------------------------------


@pytest.fixture
async def hosted(upstream: FakeUpstream, make_settings: Any, app_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_factory(make_settings(web_search_hosted=True))
    async with _client(app) as http:
        yield http


async def test_hosted_claude_code_subrequest(hosted: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    folded, plain = await _both(hosted, subrequest())
    assert folded["content"] == plain["content"]
    assert _kinds(plain) == ["server_tool_use", "web_search_tool_result", "text"]
    assert plain["content"][0]["input"] == {"query": "latest python release"}
    results = plain["content"][1]["content"]
    assert [x["title"] for x in results] == [
        "Result 1 about latest-python-release",
        "Result 2 about latest-python-release",
        "example.org/latest-python-release/page-3",
    ]
    assert all(x["encrypted_content"].startswith("mbws1.") for x in results)
    assert [c["title"] for c in plain["content"][2]["citations"]] == [x["title"] for x in results[:2]]
    assert plain["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert folded["usage"]["server_tool_use"] == {"web_search_requests": 1}
    sent = upstream.requests[0]
    assert sent["tools"] == [{"type": "web_search"}] and sent["tool_choice"] == "required"
    assert "web_search_call.action.sources" in sent["include"] and sent["max_tool_calls"] == 8


async def test_hosted_search_without_effort_is_not_sent_minimal(
    hosted: httpx.AsyncClient, upstream: FakeUpstream
) -> None:
    _, plain = await _both(hosted, subrequest(output_config=None))
    assert _kinds(plain)[:2] == ["server_tool_use", "web_search_tool_result"]
    assert {r["reasoning"]["effort"] for r in upstream.requests} == {"low"}


async def test_hosted_second_turn_sends_the_blocks_back(hosted: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    first = (await hosted.post("/v1/messages", json=subrequest(stream=False))).json()
    body = subrequest(
        stream=False,
        tool_choice={"type": "auto"},
        messages=[
            *subrequest()["messages"],
            {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": "Thanks, summarise in one line."},
        ],
    )
    second = await hosted.post("/v1/messages", json=body)
    assert second.status_code == 200, second.text
    replayed = [i for i in upstream.requests[-1]["input"] if i.get("type") == "web_search_call"]
    assert replayed and replayed[0]["id"] == first["content"][0]["id"].removeprefix("srvtoolu_")
    assert replayed[0]["action"]["query"] == "latest python release"


@pytest.mark.parametrize("mode", ["hosted", "gateway", "off"])
def test_the_official_sdk_accumulates_every_answer(
    upstream: FakeUpstream, make_settings: Any, mode: str, searx: tuple[ThreadedServer, SearxScript]
) -> None:
    from messages_bridge.app.factory import create_app

    modes: dict[str, dict[str, Any]] = {
        "hosted": {"web_search_hosted": True},
        "gateway": {"web_search_backend_url": searx[0].url},
        "off": {"web_search_mode": "off"},
    }
    overrides = modes[mode]
    with serving(create_app(make_settings(**overrides))) as gateway:
        sdk = anthropic.Anthropic(api_key="k", base_url=gateway.url, max_retries=0)
        body = subrequest(max_tokens=4096)  # the SDK refuses non-streaming calls with Claude Code's 64000
        body.pop("stream")
        with sdk.messages.stream(**body) as stream:
            streamed = stream.get_final_message()
        created = sdk.messages.create(**body)
        sdk.close()
    assert [b.type for b in streamed.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert [b.type for b in created.content] == [b.type for b in streamed.content]
    assert streamed.usage.server_tool_use is not None
    if mode == "off":
        assert streamed.content[1].content.type == "web_search_tool_result_error"  # type: ignore[union-attr]
        return
    assert streamed.model_dump()["content"] == created.model_dump()["content"]
    assert streamed.usage.server_tool_use.web_search_requests == 1
    if mode == "hosted":
        text = streamed.content[2]
        assert text.type == "text" and text.citations and text.citations[0].type == "web_search_result_location"


# ---- gateway-run search ----------------------------------------------------------------------------


@pytest.fixture
async def gateway_mode(
    upstream: FakeUpstream, make_settings: Any, app_factory: Any, searx: tuple[ThreadedServer, SearxScript]
) -> AsyncIterator[httpx.AsyncClient]:
    server, _ = searx
    app = await app_factory(make_settings(web_search_backend_url=server.url, web_search_timeout=1.0))
    async with _client(app) as http:
        yield http


async def test_gateway_search_runs_the_backend(
    gateway_mode: httpx.AsyncClient, upstream: FakeUpstream, searx: tuple[ThreadedServer, SearxScript]
) -> None:
    folded, plain = await _both(gateway_mode, subrequest())
    assert folded["content"] == plain["content"]
    assert _kinds(plain) == ["server_tool_use", "web_search_tool_result", "text"]
    results = plain["content"][1]["content"]
    assert [x["title"] for x in results] == [f"Searx result {n} for latest python release" for n in (1, 2, 3)]
    assert plain["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert searx[1].queries == ["latest python release", "latest python release"]
    # The model saw the results as the output of its web_search function, and was no longer forced to search.
    second_round = upstream.requests[1]
    assert second_round["tool_choice"] == "auto"
    output = next(i for i in second_round["input"] if i.get("type") == "function_call_output")
    assert "Searx result 1 for latest python release" in output["output"]


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("error500", {"type": "web_search_tool_result_error", "error_code": "unavailable"}),
        ("ratelimit", {"type": "web_search_tool_result_error", "error_code": "too_many_requests"}),
        ("malformed", {"type": "web_search_tool_result_error", "error_code": "unavailable"}),
        ("slow", {"type": "web_search_tool_result_error", "error_code": "unavailable"}),
        ("empty", []),
    ],
)
async def test_gateway_backend_failures_are_in_band(
    gateway_mode: httpx.AsyncClient,
    upstream: FakeUpstream,
    searx: tuple[ThreadedServer, SearxScript],
    behaviour: Any,
    expected: Any,
) -> None:
    searx[1].behaviours = [behaviour, behaviour]
    folded, plain = await _both(gateway_mode, subrequest())
    assert folded["content"] == plain["content"]
    assert _kinds(plain) == ["server_tool_use", "web_search_tool_result", "text"]
    assert plain["content"][1]["content"] == expected
    if behaviour != "empty":
        output = next(i for i in upstream.requests[-1]["input"] if i.get("type") == "function_call_output")
        assert "failed" in output["output"]


def _calls(*queries: str, stream: bool = False) -> Reply:
    output = [
        {
            "id": f"fc_{n}",
            "type": "function_call",
            "status": "completed",
            "call_id": f"call_{n}",
            "name": "web_search",
            "arguments": json.dumps({"query": q}),
        }
        for n, q in enumerate(queries)
    ]
    response = {
        "id": "resp_calls",
        "object": "response",
        "status": "completed",
        "output": output,
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }
    if stream:
        return Reply(chunks=[encode_sse([event]) for event in events_for(response, chunk=3)])
    return Reply(json_body=response)


async def test_gateway_enforces_max_uses(gateway_mode: httpx.AsyncClient, upstream: FakeUpstream) -> None:
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    upstream.script.push(_calls("one", "two", stream=True))
    streamed = await gateway_mode.post("/v1/messages", json=subrequest(tools=[tool]))
    events = parse_sse(streamed.content)
    check_grammar(events)
    upstream.script.push(_calls("one", "two"))
    message = (await gateway_mode.post("/v1/messages", json=subrequest(stream=False, tools=[tool]))).json()
    assert fold(events)["content"] == message["content"]
    assert _kinds(message) == [
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    assert isinstance(message["content"][1]["content"], list)
    assert message["content"][3]["content"]["error_code"] == "max_uses_exceeded"
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert "tools" not in upstream.requests[-1]  # the limit reached: searching is no longer offered
    # The answer after the searches was streamed from the upstream as it came, not in one piece.
    text_deltas = [p for n, p in events if n == "content_block_delta" and p["delta"]["type"] == "text_delta"]
    assert len(text_deltas) > 1


async def test_gateway_search_observed_without_the_query(
    upstream: FakeUpstream,
    make_settings: Any,
    app_factory: Any,
    searx: tuple[ThreadedServer, SearxScript],
    capture_logs: Callable[..., LogCapture],
) -> None:
    app, logs = await _logged_gateway(make_settings, app_factory, capture_logs, searx[0])
    async with _client(app) as http:
        reply = await http.post("/v1/messages", json=subrequest(stream=False))
        metrics = (await http.get("/metrics")).text
    assert reply.status_code == 200
    access = logs.access()[-2]
    assert access["web_search_mode"] == "gateway" and access["web_searches"] == 1
    assert access["web_search_errors"] == 0 and access["web_search_ms"] > 0
    assert "latest python release" not in logs.text
    assert 'messages_bridge_web_searches_total{mode="gateway"}' in metrics


# ---- off -------------------------------------------------------------------------------------------


async def test_off_answers_unavailable_in_band(upstream: FakeUpstream, make_settings: Any, app_factory: Any) -> None:
    app = await app_factory(make_settings(web_search_mode="off"))
    async with _client(app) as http:
        folded, plain = await _both(http, subrequest())
    assert folded["content"][2] == plain["content"][2]  # (ids are random per answer)
    assert _kinds(folded) == _kinds(plain) == ["server_tool_use", "web_search_tool_result", "text"]
    assert plain["content"][1]["content"] == {"type": "web_search_tool_result_error", "error_code": "unavailable"}
    assert "turned off" in plain["content"][2]["text"]
    assert upstream.requests == []


async def test_no_backend_and_no_hosted_search_says_why(
    upstream: FakeUpstream, make_settings: Any, app_factory: Any
) -> None:
    app = await app_factory(make_settings())
    async with _client(app) as http:
        reply = await http.post("/v1/messages", json=subrequest())
    assert reply.status_code == 200
    folded = fold(parse_sse(reply.content))
    assert "no hosted web search and no search backend" in folded["content"][2]["text"]


async def test_gateway_loop_is_bounded_against_an_upstream_that_keeps_searching(
    gateway_mode: httpx.AsyncClient, upstream: FakeUpstream, searx: tuple[ThreadedServer, SearxScript]
) -> None:
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1, "allowed_domains": ["python.org"]}
    upstream.script.push(*[_calls(f"again {n}") for n in range(6)])
    reply = await gateway_mode.post("/v1/messages", json=subrequest(stream=False, tools=[tool]))
    assert reply.status_code == 200
    message = reply.json()
    assert len(upstream.requests) == 3  # max_uses + 2 rounds, then the loop ends whatever the upstream does
    assert message["stop_reason"] == "pause_turn"  # Anthropic's stop reason for a paused server-tool loop
    errors = [
        b["content"]["error_code"]
        for b in message["content"]
        if b["type"] == "web_search_tool_result" and isinstance(b["content"], dict)
    ]
    assert errors == ["max_uses_exceeded", "max_uses_exceeded"]
    assert searx[1].queries == ["again 0 site:python.org"]


# ---- the access record of the gateway-run loop ------------------------------------------------------


async def test_a_streamed_loop_records_its_upstream_facts_at_its_end(
    upstream: FakeUpstream,
    make_settings: Any,
    app_factory: Any,
    searx: tuple[ThreadedServer, SearxScript],
    capture_logs: Callable[..., LogCapture],
) -> None:
    app, logs = await _logged_gateway(make_settings, app_factory, capture_logs, searx[0])
    async with _client(app) as http:
        reply = await http.post("/v1/messages", json=subrequest())
    assert reply.status_code == 200
    folded = fold(parse_sse(reply.content))
    access = logs.access()[-1]
    assert access["stream"] is True and access["status"] == 200 and access["disconnected"] is False
    assert access["web_search_mode"] == "gateway" and access["web_searches"] == 1 and access["web_search_ms"] > 0
    assert access["upstream_model"] == upstream.requests[0]["model"]
    assert access["upstream_ms"] is not None and access["first_token_ms"] is not None
    assert access["input_tokens"] == folded["usage"]["input_tokens"] > 0
    assert access["output_tokens"] == folded["usage"]["output_tokens"] > 0
    assert access["stop_reason"] == folded["stop_reason"]
    assert access["error_type"] is None and access["upstream_error_type"] is None


@pytest.mark.parametrize("stream", [True, False])
async def test_an_upstream_refusal_before_the_first_event_is_a_json_error(
    upstream: FakeUpstream,
    make_settings: Any,
    app_factory: Any,
    searx: tuple[ThreadedServer, SearxScript],
    capture_logs: Callable[..., LogCapture],
    stream: bool,
) -> None:
    app, logs = await _logged_gateway(make_settings, app_factory, capture_logs, searx[0])
    refusal = {"error": {"type": "invalid_request_error", "message": "bad input", "code": None, "param": None}}
    upstream.script.push(Reply(status=400, json_body=refusal, headers={"x-request-id": "req_up_1"}))
    async with _client(app) as http:
        reply = await http.post("/v1/messages", json=subrequest(stream=stream))
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"]["type"] == "invalid_request_error"
    access = logs.access()[-1]
    assert access["status"] == 400 and access["error_type"] == "invalid_request_error"
    assert access["upstream_status"] == 400 and access["upstream_request_id"] == "req_up_1"
    assert access["upstream_ms"] is not None and access["disconnected"] is False
    assert access["web_search_mode"] == "gateway" and access["web_searches"] == 0
