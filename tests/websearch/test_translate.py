"""Web search translation (pure): the request per mode, hosted answers → blocks, blocks sent back → input."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.errors import InvalidRequestError
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol import responses as r
from messages_bridge.protocol.responses_stream import decode_event
from messages_bridge.protocol.sse import ServerSentEvent
from messages_bridge.translate import stream
from messages_bridge.translate.response import to_anthropic_message as _to_message
from messages_bridge.translate.websearch import HostedSearches, WebSearchOptions, read_token
from tests.streamkit import check_grammar, to_wire
from tests.streamkit import translate as translate_stream
from tests.upstream_schema import assert_valid_create
from tests.websearch.kit import GATEWAY, HOSTED, OFF, subrequest, translate

SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


def to_anthropic_message(response: r.Response, t: Any, *, model: str) -> Any:
    """The Message as plain JSON (what the client gets)."""
    return json.loads(msgspec.json.encode(_to_message(response, t, model=model)))


def _body(translation: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(msgspec.json.encode(translation.body))
    return body


def test_hosted_request_maps_the_tool_forces_it_and_asks_for_sources() -> None:
    tool = {
        **SEARCH_TOOL,
        "allowed_domains": ["https://www.python.org/"],
        "blocked_domains": ["spam.example"],
        "user_location": {"type": "approximate", "city": "Oslo", "country": "NO", "region": None},
    }
    body = _body(translate(subrequest(tools=[tool], thinking={"type": "disabled"}, output_config=None)))
    assert body["tools"] == [
        {
            "type": "web_search",
            "filters": {"allowed_domains": ["python.org"]},
            "user_location": {"type": "approximate", "city": "Oslo", "country": "NO"},
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["include"] == ["reasoning.encrypted_content", "web_search_call.action.sources"]
    assert body["reasoning"] == {"effort": "low"}  # "minimal" is refused with web_search
    assert body["max_tool_calls"] == 8
    assert "spam.example" in body["instructions"] and "at most 8 times" in body["instructions"]
    assert_valid_create(body)


def test_hosted_request_keeps_the_clients_effort() -> None:
    assert _body(translate(subrequest()))["reasoning"] == {"effort": "high"}  # Claude Code sends effort high


def test_forcing_web_search_next_to_function_tools_uses_allowed_tools() -> None:
    tools = [{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}, SEARCH_TOOL]
    body = _body(translate(subrequest(tools=tools)))
    assert body["tool_choice"] == {"type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]}
    assert [t["type"] for t in body["tools"]] == ["function", "web_search"]
    assert_valid_create(body)


def test_gateway_request_offers_a_function() -> None:
    body = _body(translate(subrequest(), GATEWAY))
    assert body["tools"][0]["type"] == "function" and body["tools"][0]["name"] == "web_search"
    assert body["tool_choice"] == {"type": "function", "name": "web_search"}
    assert "web_search_call.action.sources" not in body["include"]
    assert_valid_create(body)


def test_off_request_sends_no_search_tool() -> None:
    body = _body(translate(subrequest(), OFF))
    assert "tools" not in body and "tool_choice" not in body


def test_other_server_tools_are_still_refused() -> None:
    with pytest.raises(InvalidRequestError, match="web_fetch"):
        translate(subrequest(tools=[SEARCH_TOOL, {"type": "web_fetch_20250910", "name": "web_fetch"}]))


def _response(*output: dict[str, Any]) -> r.Response:
    return r.RESPONSE_DECODER.decode(json.dumps({"id": "resp_1", "status": "completed", "output": list(output)}))


def _search(ws_id: str, query: str, *urls: str, status: str = "completed") -> dict[str, Any]:
    action: dict[str, Any] = {"type": "search", "query": query}
    if urls:
        action["sources"] = [{"type": "url", "url": u} for u in urls]
    return {"type": "web_search_call", "id": ws_id, "status": status, "action": action}


def _answer(text: str, *cites: tuple[str, str, int, int]) -> dict[str, Any]:
    annotations = [
        {"type": "url_citation", "url": u, "title": t, "start_index": s, "end_index": e} for u, t, s, e in cites
    ]
    return {
        "type": "message",
        "id": "msg_1",
        "content": [{"type": "output_text", "text": text, "annotations": annotations}],
    }


def test_results_titled_from_citations_and_blocked_domains_removed() -> None:
    t = translate(subrequest(tools=[{**SEARCH_TOOL, "blocked_domains": ["bad.example"]}])).reply
    text = "Python 3.14 is out (python.org). Also (bad)."
    response = _response(
        _search("ws_1", "python", "https://python.org/news", "https://bad.example/x", "https://docs.python.org/3/"),
        _answer(
            text,
            ("https://python.org/news?utm_source=openai", "Python News", 19, 31),
            ("https://bad.example/x", "Bad", 38, 43),
        ),
    )
    message = to_anthropic_message(response, t, model="claude-opus-4-8")
    use, result, answer = message["content"]
    assert use == {"type": "server_tool_use", "id": "srvtoolu_ws_1", "name": "web_search", "input": {"query": "python"}}
    assert result["type"] == "web_search_tool_result" and result["tool_use_id"] == "srvtoolu_ws_1"
    assert [(x["url"], x["title"]) for x in result["content"]] == [
        ("https://python.org/news", "Python News"),
        ("https://docs.python.org/3/", "docs.python.org/3"),
    ]
    assert answer["type"] == "text" and answer["text"] == text
    assert [c["url"] for c in answer["citations"]] == ["https://python.org/news?utm_source=openai"]
    assert answer["citations"][0]["cited_text"] == "(python.org)"
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1}


def test_max_uses_is_enforced_on_what_comes_back() -> None:
    t = translate(subrequest(tools=[{**SEARCH_TOOL, "max_uses": 1}])).reply
    response = _response(
        _search("ws_1", "a", "https://a.example/"), _search("ws_2", "b", "https://b.example/"), _answer("done")
    )
    content = to_anthropic_message(response, t, model="m")["content"]
    assert content[3]["tool_use_id"] == "srvtoolu_ws_2"
    assert content[3]["content"] == {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}


def test_a_failed_search_is_an_error_block() -> None:
    t = translate(subrequest()).reply
    content = to_anthropic_message(_response(_search("ws_1", "a", status="failed"), _answer("sorry")), t, model="m")
    assert content["content"][1]["content"] == {"type": "web_search_tool_result_error", "error_code": "unavailable"}


def test_minted_tokens_carry_url_and_title() -> None:
    searches = HostedSearches(WebSearchOptions())
    item = r.decode_output_item(json.dumps(_search("ws_9", "q", "https://x.example/a")).encode())
    assert isinstance(item, r.WebSearchCallOutput)
    blocks = searches.on_call(item)
    assert blocks is not None and isinstance(blocks[1]["content"], list)
    searches.resolve()
    result = blocks[1]["content"][0]
    ref = read_token(result["encrypted_content"])
    assert ref is not None and ref.u == "https://x.example/a" and ref.t == "x.example/a"
    assert read_token("EqQBCgIYAhIM-anthropic-minted") is None


def _second_turn(settings: Any) -> dict[str, Any]:
    first = subrequest()
    history = [
        {"type": "server_tool_use", "id": "srvtoolu_ws_abc", "name": "web_search", "input": {"query": "python"}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_ws_abc",
            "content": [
                {
                    "type": "web_search_result",
                    "url": "https://python.org/",
                    "title": "Python",
                    "encrypted_content": "mbws1.eyJ1IjoiaHR0cHM6Ly9weXRob24ub3JnLyIsInQiOiJQeXRob24ifQ==",
                    "page_age": None,
                }
            ],
        },
        {
            "type": "text",
            "text": "Python 3.14.",
            "citations": [
                {
                    "type": "web_search_result_location",
                    "url": "https://python.org/",
                    "title": "Python",
                    "cited_text": "3.14",
                    "encrypted_index": "mbci1.x",
                }
            ],
        },
    ]
    messages = [*first["messages"], {"role": "assistant", "content": history}, {"role": "user", "content": "Thanks"}]
    return _body(translate({**first, "messages": messages, "tool_choice": {"type": "auto"}}, settings))


def test_blocks_sent_back_replay_as_the_hosted_call() -> None:
    body = _second_turn(HOSTED)
    call = body["input"][1]
    assert call == {
        "type": "web_search_call",
        "id": "ws_abc",
        "status": "completed",
        "action": {"type": "search", "query": "python", "sources": [{"type": "url", "url": "https://python.org/"}]},
    }
    assert body["input"][2] == {"type": "message", "role": "assistant", "content": "Python 3.14."}
    assert_valid_create(body)


def test_blocks_sent_back_replay_as_text_without_hosted_search() -> None:
    body = _second_turn(GATEWAY)
    assert body["input"][1]["role"] == "assistant"
    assert body["input"][1]["content"] == 'Searched the web for "python".\n1. Python — https://python.org/'
    assert_valid_create(body)


def test_a_result_without_its_server_tool_use_is_refused() -> None:
    history = [{"type": "web_search_tool_result", "tool_use_id": "srvtoolu_x", "content": []}]
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": history},
        {"role": "user", "content": "ok"},
    ]
    with pytest.raises(InvalidRequestError, match="server_tool_use"):
        translate(subrequest(messages=messages))


def test_held_events_are_released_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result waits for the answer's titles, but not beyond HOLD_EVENTS: then URL-derived titles go out."""
    monkeypatch.setattr(stream, "HOLD_EVENTS", 5)
    t = translate(subrequest()).reply
    text = "word " * 40 + "(cited)"
    response = {
        "id": "resp_h",
        "status": "completed",
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "output": [
            _search("ws_1", "q", "https://a.example/x"),
            _answer(text, ("https://a.example/x", "Real title", len(text) - 7, len(text))),
        ],
    }
    translator = stream.StreamTranslator(t, model="m", input_tokens=1)
    released_at = ""
    for event in events_for(response, chunk=4):
        decoded = decode_event(ServerSentEvent(event=event["type"], data=json.dumps(event).encode()))
        out = translator.feed(decoded) if decoded is not None else []
        starts = [e for e in out if isinstance(e, o.ContentBlockStart)]
        if not released_at and any(isinstance(e.content_block, o.WebSearchResultShell) for e in starts):
            released_at = event["type"]
    assert released_at == "response.output_text.delta"  # before the answer completed
    wire = to_wire(translate_stream([encode_sse(events_for(response, chunk=4))], t)[0])
    check_grammar(wire)
    shells = [p["content_block"] for n, p in wire if n == "content_block_start"]
    assert shells[1]["content"][0]["title"] == "a.example/x"
