"""Claude Code's WebSearch through the gateway, end to end (`claude -p`, the pinned CLI, the fake upstream).

The main loop calls WebSearch; Claude Code sends its sub-request (only Anthropic's `web_search` server tool,
forced) through the gateway; the next main-loop turn carries the tool result Claude Code built from the answer's
blocks. Hosted: the upstream's search. Gateway-run: a fake SearXNG, failing — Claude Code must get
`Web search error: …`, never `API Error`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from messages_bridge.demo.simulator import respond
from tests.conftest import FakeUpstream
from tests.e2e.test_claude_code import Claude, claude_bin, scripted, succeeded, text_item
from tests.fake_searxng import SearxScript, create_searxng_app
from tests.servers import ThreadedServer, serving

pytestmark = pytest.mark.slow
__all__ = ["claude_bin"]
JSON = dict[str, Any]
QUERY = "latest python release"


def websearch_call(call_id: str) -> JSON:
    return {
        "id": "fc_" + call_id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": "WebSearch",
        "arguments": json.dumps({"query": QUERY}),
    }


def hosted_search_reply() -> Reply:
    """The upstream's hosted search answering the sub-request, streamed like the real API."""
    prompt = {"type": "input_text", "text": f"Perform a web search for the query: {QUERY}"}
    request = {
        "model": "gpt-5",
        "tools": [{"type": "web_search"}],
        "tool_choice": "required",
        "include": ["web_search_call.action.sources"],
        "input": [{"type": "message", "role": "user", "content": [prompt]}],
    }
    return Reply(chunks=[encode_sse([event]) for event in events_for(respond(request))])


def tool_output(body: JSON) -> str:
    [output] = [item["output"] for item in body["input"] if item.get("type") == "function_call_output"]
    return output if isinstance(output, str) else "".join(part.get("text", "") for part in output)


@pytest.fixture
def claude_with(claude_bin: Path, tmp_path: Path) -> Iterator[Any]:
    servers: list[Any] = []

    def start(settings: Any) -> Claude:
        context = serving(create_app(settings))
        server = context.__enter__()
        servers.append(context)
        home, work = tmp_path / "home", tmp_path / "work"
        home.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        return Claude(claude_bin, server.url, home, work)

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def test_websearch_through_hosted_search(claude_with: Any, make_settings: Any, upstream: FakeUpstream) -> None:
    claude = claude_with(make_settings(web_search_hosted=True))
    upstream.script.push(
        scripted("resp_ws_main1", websearch_call("call_ws1")),
        hosted_search_reply(),
        scripted("resp_ws_main2", text_item("msg_ws_main2", "Python 3.14 is out.")),
    )

    result = succeeded(claude.run(f"Search the web for {QUERY}", "--allowedTools", "WebSearch"))

    assert result["result"] == "Python 3.14 is out."
    _, sub, main2 = (r.body for r in upstream.script.received)
    assert sub["tools"] == [{"type": "web_search"}] and sub["tool_choice"] == "required"
    output = tool_output(main2)
    assert output.startswith(f'Web search results for query: "{QUERY}"\n\nLinks: [{{"title":"')
    assert '"title":"Result 1 about latest-python-release"' in output
    assert "https://example.org/latest-python-release/page-1" in output
    assert "API Error" not in output


@pytest.fixture
def searx() -> Iterator[tuple[ThreadedServer, SearxScript]]:
    script = SearxScript()
    with serving(create_searxng_app(script)) as server:
        yield server, script


def _gateway_run(claude_with: Any, make_settings: Any, upstream: FakeUpstream, searx: Any, answer: str) -> str:
    """WebSearch answered by the gateway's own search loop; the tool result Claude Code built from it."""
    claude = claude_with(make_settings(web_search_backend_url=searx[0].url))
    search_call = {
        "id": "fc_g1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_g1",
        "name": "web_search",
        "arguments": json.dumps({"query": QUERY}),
    }
    upstream.script.push(
        scripted("resp_ws_main1", websearch_call("call_ws1")),
        scripted("resp_g1", search_call),
        scripted("resp_g2", text_item("msg_g2", answer)),
        scripted("resp_ws_main2", text_item("msg_ws_main2", "Done.")),
    )

    result = succeeded(claude.run(f"Search the web for {QUERY}", "--allowedTools", "WebSearch"))

    assert result["result"] == "Done."
    assert searx[1].queries == [QUERY]
    return tool_output(upstream.script.received[-1].body)


def test_websearch_through_the_gateways_backend(
    claude_with: Any, make_settings: Any, upstream: FakeUpstream, searx: Any
) -> None:
    output = _gateway_run(claude_with, make_settings, upstream, searx, "Python 3.14 is out.")
    assert output.startswith(f'Web search results for query: "{QUERY}"\n\nLinks: [{{"title":"Searx result 1 for')
    assert "https://searx.example/latest-python-release/3" in output
    assert "Python 3.14 is out." in output


def test_websearch_backend_failure_reaches_claude_code_in_band(
    claude_with: Any, make_settings: Any, upstream: FakeUpstream, searx: Any
) -> None:
    searx[1].behaviours = ["error500"]
    output = _gateway_run(claude_with, make_settings, upstream, searx, "The search backend is down.")
    assert "Web search error: unavailable" in output
    assert "The search backend is down." in output
    assert "API Error" not in output


def test_websearch_turned_off_reaches_claude_code_in_band(
    claude_with: Any, make_settings: Any, upstream: FakeUpstream
) -> None:
    claude = claude_with(make_settings(web_search_mode="off"))
    upstream.script.push(
        scripted("resp_ws_main1", websearch_call("call_ws1")),
        scripted("resp_ws_main2", text_item("msg_ws_main2", "Done.")),
    )

    succeeded(claude.run(f"Search the web for {QUERY}", "--allowedTools", "WebSearch"))

    assert len(upstream.script.received) == 2  # the sub-request never reached the upstream
    output = tool_output(upstream.script.received[-1].body)
    assert "Web search error: unavailable" in output and "turned off" in output
    assert "API Error" not in output
