"""Golden fixtures of web search: Claude Code's sub-request translated per mode (`requests/<mode>.responses.json`),
and hosted-search upstream streams translated to Anthropic SSE (`streams/<case>.anthropic.sse`).

`UPDATE_GOLDENS=1` rewrites the expected files; review the diff before committing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.simulator import respond
from messages_bridge.protocol.anthropic_stream import encode_events
from tests.streamkit import check_grammar, parse_sse
from tests.streamkit import translate as translate_stream
from tests.websearch.kit import FIXTURES, GATEWAY, HOSTED, OFF, recorded, subrequest, translate

UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
MODES = {"hosted": HOSTED, "gateway": GATEWAY, "off": OFF}


def _check(actual: str, path: Path) -> None:
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        assert UPDATE, f"golden {path.name} was missing and has been written: review it and rerun"
    assert actual == path.read_text()


@pytest.mark.parametrize("mode", MODES)
def test_subrequest_golden(mode: str) -> None:
    body = json.loads(msgspec.json.encode(translate(subrequest(), MODES[mode]).body))
    _check(json.dumps(body, indent=2, ensure_ascii=False) + "\n", FIXTURES / "requests" / f"{mode}.responses.json")


def _simulated() -> dict[str, Any]:
    return respond(json.loads(msgspec.json.encode(translate(subrequest(), HOSTED).body)))


STREAMS: dict[str, Callable[[], dict[str, Any]]] = {
    "simulated_hosted": _simulated,
    "recorded_world_news": lambda: recorded("world_news_stream")["response"],
}


@pytest.mark.parametrize("case", STREAMS)
def test_stream_golden(case: str) -> None:
    upstream = encode_sse(events_for(STREAMS[case](), chunk=64))
    events, _ = translate_stream([upstream], translate(subrequest()).reply, model="claude-opus-4-8")
    wire = encode_events(events).decode()
    check_grammar(parse_sse(wire.encode()))
    _check(wire, FIXTURES / "streams" / f"{case}.anthropic.sse")
