"""The README's routing examples, verbatim, against fake upstreams (their URLs swapped for 127.0.0.1 ones)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.routing.conftest import HELLO

Make = Callable[..., Any]
README = Path(__file__).resolve().parents[2] / "README.md"
HAIKU = HELLO | {"model": "claude-haiku-4-5-20251001"}
THINKING = HELLO | {"model": "claude-opus-4-8", "thinking": {"type": "adaptive"}}


def examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Routing") : text.index("## Observability")]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def localized(example: str, fakes: dict[str, FakeUpstream]) -> str:
    return (
        example.replace("https://api.openai.com/v1", fakes["a"].base_url)
        .replace("https://myres.openai.azure.com/openai/v1", fakes["b"].base_url)
        .replace("http://127.0.0.1:8000/v1", fakes["c"].base_url)
    )


def served(fakes: dict[str, FakeUpstream]) -> list[tuple[str, str]]:
    out = [(name, body["model"]) for name, fake in fakes.items() for body in fake.requests]
    for fake in fakes.values():
        fake.script.received.clear()
    return out


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEY_2", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-value")


def test_there_are_three_examples() -> None:
    assert len(examples()) == 3


async def test_haiku_on_a_small_model(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(localized(examples()[0], fakes))
    assert (await gateway.post(HAIKU)).status_code == 200
    assert (await gateway.post(THINKING | {"max_tokens": 200000})).status_code == 200
    assert served(fakes) == [("a", "gpt-5-mini"), ("a", "gpt-5")]
    assert (await gateway.post(HELLO | {"model": "gpt-4o"})).status_code == 404


async def test_openai_with_azure_failover(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(localized(examples()[1], fakes))
    assert (await gateway.post()).status_code == 200
    assert fakes["a"].script.received[0].headers["authorization"].startswith("Bearer openai_api_key")
    fakes["a"].script.push(Reply(status=503, json_body={"error": {"message": "down"}}))
    assert (await gateway.post(HAIKU | {"stream": True})).status_code == 200
    assert fakes["b"].script.received[0].headers["api-key"] == "azure_openai_api_key-value"
    assert served(fakes) == [("a", "gpt-5"), ("a", "gpt-5-mini"), ("b", "gpt-5-mini")]


async def test_a_local_server_beside_openai(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(localized(examples()[2], fakes))
    for body in (HAIKU, HELLO, THINKING, HELLO | {"model": "openai/gpt-5.1"}):
        assert (await gateway.post(body)).status_code == 200
    assert "authorization" not in fakes["c"].script.received[0].headers  # no api_keys: no credentials sent
    assert served(fakes) == [("a", "gpt-5"), ("a", "gpt-5.1"), ("c", "gpt-oss-20b"), ("c", "gpt-oss-20b")]
    fakes["c"].script.push(Reply(status=502, json_body={"error": {"message": "local server down"}}))
    assert (await gateway.post(HAIKU)).status_code == 200
    assert served(fakes) == [("a", "gpt-5-mini"), ("c", "gpt-oss-20b")]
