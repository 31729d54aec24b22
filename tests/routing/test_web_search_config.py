"""The routing file's `web_search:` key decides how web search is served (over the BRIDGE_WEB_SEARCH_* settings),
per model through its profile's `web_search`, and a reload that changes it takes effect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream
from tests.fake_searxng import SearxScript, create_searxng_app
from tests.servers import ThreadedServer, serving
from tests.websearch.kit import subrequest


@pytest.fixture
def searx() -> Iterator[tuple[ThreadedServer, SearxScript]]:
    script = SearxScript(slow_seconds=3.0)
    with serving(create_searxng_app(script)) as server:
        yield server, script


def _file(fakes: dict[str, FakeUpstream], web_search: str, hosted: str = "false") -> str:
    return (
        "upstreams:\n"
        f"  a: {{base_url: '{fakes['a'].base_url}', api_keys: [sk-a-0000000000000000000]}}\n"
        f"models:\n  gpt-5: {{web_search: {hosted}}}\n"
        f"{web_search}"
        'routes:\n  - match: "*"\n    targets: [a/gpt-5]\n'
    )


def _kinds(reply: Any) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [block["type"] for block in reply.json()["content"]]


async def test_the_file_turns_on_the_gateway_backend(
    fakes: dict[str, FakeUpstream], routed: Callable[..., Any], searx: tuple[ThreadedServer, SearxScript]
) -> None:
    text = _file(fakes, f"web_search: {{mode: gateway, backend: {{kind: searxng, url: '{searx[0].url}'}}}}\n")
    gateway = await routed(text)
    reply = await gateway.post({**subrequest(), "stream": False})
    kinds = _kinds(reply)
    assert kinds[:2] == ["server_tool_use", "web_search_tool_result"]
    result = reply.json()["content"][1]["content"]
    assert isinstance(result, list) and result and result[0]["type"] == "web_search_result"
    assert searx[1].queries, "the gateway's backend was asked"


async def test_the_file_turns_web_search_off(fakes: dict[str, FakeUpstream], routed: Callable[..., Any]) -> None:
    gateway = await routed(_file(fakes, "web_search: {mode: off}\n", hosted="true"))
    reply = await gateway.post({**subrequest(), "stream": False})
    assert _kinds(reply)[:2] == ["server_tool_use", "web_search_tool_result"]
    assert reply.json()["content"][1]["content"] == {
        "type": "web_search_tool_result_error",
        "error_code": "unavailable",
    }
    assert fakes["a"].requests == [], "off is answered in-band without calling the upstream"


async def test_the_profile_says_which_model_has_hosted_search(
    fakes: dict[str, FakeUpstream], routed: Callable[..., Any]
) -> None:
    gateway = await routed(_file(fakes, "", hosted="true"))
    reply = await gateway.post({**subrequest(), "stream": False})
    assert _kinds(reply)[:2] == ["server_tool_use", "web_search_tool_result"]
    tools = fakes["a"].requests[-1]["tools"]
    assert [t["type"] for t in tools] == ["web_search"], "hosted search goes to the upstream's own tool"


async def test_a_reload_applies_a_new_web_search_key(
    fakes: dict[str, FakeUpstream],
    routed: Callable[..., Any],
    tmp_path: Path,
    searx: tuple[ThreadedServer, SearxScript],
) -> None:
    gateway = await routed(_file(fakes, "web_search: {mode: off}\n"))
    assert gateway.state.search_backend is None
    (tmp_path / "routing.yaml").write_text(
        _file(fakes, f"web_search: {{mode: gateway, backend: {{kind: searxng, url: '{searx[0].url}'}}}}\n")
    )
    assert gateway.app.state.reloader.reload()
    reply = await gateway.post({**subrequest(), "stream": False})
    assert _kinds(reply)[:2] == ["server_tool_use", "web_search_tool_result"]
    assert searx[1].queries


def test_an_invalid_web_search_key_names_the_field(tmp_path: Path) -> None:
    from messages_bridge.routing.config_file import ConfigError, parse_config

    text = "upstreams: {a: {base_url: 'http://h'}}\nallow_direct: true\nweb_search: {mode: sometimes}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="routing.yaml", env={})
    assert "web_search.mode" in str(info.value)
