"""Real Responses answers with `web_search_call` items and `url_citation` annotations (public recordings), replayed
through both translators: golden messages, the stream grammar, and fold of the stream = the non-streaming message.

Plus a Hypothesis property over generated hosted-search answers and arbitrary byte chunkings.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.websearch import WebSearchOptions
from tests.streamkit import check_grammar, chunked, fold, to_wire
from tests.streamkit import translate as translate_stream
from tests.websearch.kit import FIXTURES, recorded, subrequest, translate

UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
RECORDED = ["iceland_web_search_preview", "world_news_stream", "tokyo_allowed_domains_gpt5"]
MODEL = "claude-opus-4-8"


def _reply(**tool: Any) -> ReplyContext:
    return translate(subrequest(tools=[{"type": "web_search_20250305", "name": "web_search", **tool}])).reply


def _message(response: dict[str, Any], t: ReplyContext) -> dict[str, Any]:
    message = to_anthropic_message(r.RESPONSE_DECODER.decode(json.dumps(response)), t, model=MODEL)
    return json.loads(json.dumps(message))  # type: ignore[no-any-return]


def _streamed(response: dict[str, Any], t: ReplyContext, cuts: list[int] = ()) -> list[Any]:  # type: ignore[assignment]
    data = encode_sse(events_for(response))
    events, _ = translate_stream(chunked(data, cuts), t, model=MODEL, input_tokens=10)
    return to_wire(events)


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_answer_golden(name: str) -> None:
    message = _message(recorded(name)["response"], _reply(max_uses=8))
    path = FIXTURES / "recorded" / f"{name}.anthropic.json"
    if UPDATE or not path.exists():
        path.write_text(json.dumps(message, indent=2, ensure_ascii=False) + "\n")
        assert UPDATE, f"golden {path.name} was missing and has been written: review it and rerun"
    assert message == json.loads(path.read_text())


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_answer_streams_to_the_same_message(name: str) -> None:
    t = _reply(max_uses=8)
    response = recorded(name)["response"]
    wire = _streamed(response, t)
    check_grammar(wire)
    folded, message = fold(wire), _message(response, t)
    assert folded["content"] == message["content"]
    assert folded["usage"]["server_tool_use"] == message["usage"]["server_tool_use"]


def test_recorded_iceland_blocks() -> None:
    """No sources were included: the results are the cited URLs, titled from their citations."""
    message = _message(recorded("iceland_web_search_preview")["response"], _reply())
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text"]
    assert message["content"][0]["input"] == {"query": "latest news in Iceland October 2023"}
    results = message["content"][1]["content"]
    assert [x["title"] for x in results] == [
        "2023–2025 Sundhnúkur eruptions",
        "2024 Icelandic presidential election",
        "2024 Icelandic parliamentary election",
        "Latest news - Iceland Monitor",
    ]
    assert len(message["content"][2]["citations"]) == 5
    assert message["content"][2]["citations"][0]["cited_text"].startswith("([en.wikipedia.org](")


def test_recorded_tokyo_opened_pages_join_their_search() -> None:
    message = _message(recorded("tokyo_allowed_domains_gpt5")["response"], _reply())
    searches = [b for b in message["content"] if b["type"] == "web_search_tool_result"]
    assert len(searches) == 2 and searches[0]["content"] == []
    assert [x["url"] for x in searches[1]["content"]] == [
        "https://en.wikipedia.org/wiki/List_of_Japanese_prefectures_by_population",
        "https://en.wikipedia.org/wiki/Demographics_of_Tokyo",
    ]
    assert message["content"][-1] == {"type": "text", "text": "14195730"}
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 2}


def test_recorded_event_shapes_decode() -> None:
    """The recorded web_search_call and annotation events decode as the translator expects them."""
    from messages_bridge.protocol import responses_stream as rs
    from messages_bridge.protocol.sse import ServerSentEvent

    for event in recorded("world_news_stream")["recorded_events"]:
        decoded = rs.decode_event(ServerSentEvent(event=event["type"], data=json.dumps(event).encode()))
        if event["type"].startswith("response.web_search_call."):
            assert decoded is None  # progress only
        else:
            assert decoded is not None


# ---- property: generated hosted-search answers ---------------------------------------------------

WORDS = st.sampled_from(["alpha ", "beta. ", "é漢 ", "\n", "(x) "])
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def search_answers(draw: st.DrawFn) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    for n in range(draw(st.integers(0, 3))):
        urls = [f"https://site{k}.example/p{n}" for k in range(draw(st.integers(0, 3)))]
        action: dict[str, Any] = {"type": "search", "query": f"q{n}"}
        if draw(st.booleans()):
            action["sources"] = [{"type": "url", "url": u} for u in urls]
        output.append({"id": f"ws_{n}", "type": "web_search_call", "status": "completed", "action": action})
        if draw(st.booleans()):
            page = {"type": "open_page", "url": f"https://site{n}.example/opened"}
            output.append({"id": f"ws_{n}_open", "type": "web_search_call", "status": "completed", "action": page})
        if draw(st.booleans()):
            text, annotations = "", []
            for k in range(draw(st.integers(0, 3))):
                text += "".join(draw(st.lists(WORDS, max_size=4)))
                start = len(text)
                text += f"([s{k}](https://site{k}.example/p{n}?utm_source=openai))"
                annotations.append(
                    {
                        "type": "url_citation",
                        "url": f"https://site{k}.example/p{n}?utm_source=openai",
                        "title": f"Title {k}",
                        "start_index": start,
                        "end_index": len(text),
                    }
                )
            text += "".join(draw(st.lists(WORDS, max_size=3))) or "."
            output.append(
                {
                    "id": f"msg_{n}",
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": annotations}],
                }
            )
    return {"id": "resp_p", "status": "completed", "output": output, "usage": {"input_tokens": 10, "output_tokens": 5}}


@PROFILE
@given(
    response=search_answers(),
    cuts=st.lists(st.integers(0, 20000), max_size=12),
    max_uses=st.sampled_from([None, 1, 2]),
    blocked=st.booleans(),
)
def test_search_streams_fold_to_the_message(
    response: dict[str, Any], cuts: list[int], max_uses: int | None, blocked: bool
) -> None:
    tool: dict[str, Any] = {"max_uses": max_uses} if max_uses is not None else {}
    if blocked:
        tool["blocked_domains"] = ["site1.example"]
    t = _reply(**tool)
    wire = _streamed(response, t, cuts)
    check_grammar(wire)
    message = _message(response, t)
    folded = fold(wire)
    assert folded["content"] == message["content"]
    assert folded["stop_reason"] == message["stop_reason"]
    uses = [b for b in message["content"] if b["type"] == "server_tool_use"]
    results = [b for b in message["content"] if b["type"] == "web_search_tool_result"]
    assert [u["id"] for u in uses] == [x["tool_use_id"] for x in results]
    for block in results:
        if isinstance(block["content"], list):
            assert all(x["title"] and x["url"] for x in block["content"])
            assert not (blocked and any("site1.example" in x["url"] for x in block["content"]))
    assert isinstance(t.web_search, WebSearchOptions)
