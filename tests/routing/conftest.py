"""Routing fixtures: three fake upstreams (the simulator with a script) on 127.0.0.1 and routed gateways."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Script, create_upstream_app
from tests.conftest import GATEWAY, FakeUpstream
from tests.servers import serving

AppFactory = Callable[[Settings], Any]
HELLO: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    """Upstreams `a`, `b` and `c`, each the simulator (answers by itself unless its script says otherwise)."""
    sa, sb, sc = Script(), Script(), Script()
    with (
        serving(create_upstream_app(sa)) as one,
        serving(create_upstream_app(sb)) as two,
        serving(create_upstream_app(sc)) as three,
    ):
        yield {"a": FakeUpstream(one, sa), "b": FakeUpstream(two, sb), "c": FakeUpstream(three, sc)}


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def config_path(tmp_path: Path) -> Callable[[str], str]:
    def make(text: str) -> str:
        return write(tmp_path / "routing.yaml", text)

    return make


class Routed:
    """A routed gateway in-process, with its client."""

    def __init__(self, app: Any, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http

    async def post(self, body: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.post("/v1/messages", json=body or HELLO, **kwargs)

    @property
    def state(self) -> Any:
        return self.app.state.gateway


@pytest.fixture
async def routed(app_factory: AppFactory, config_path: Callable[[str], str]) -> AsyncIterator[Callable[..., Any]]:
    """`await routed(yaml_text, **settings)`: a gateway on that routing file (no upstream retries by default)."""
    clients: list[httpx.AsyncClient] = []

    async def make(text: str, **overrides: Any) -> Routed:
        values: dict[str, Any] = {"config": config_path(text), "max_retries": 0, "shutdown_grace": 2.0}
        values.update(overrides)
        app = await app_factory(Settings(**values))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=30)
        clients.append(http)
        return Routed(app, http)

    yield make
    for http in clients:
        await http.aclose()


def two_upstreams(
    fakes: dict[str, FakeUpstream],
    extra: str = "",
    routes: str | None = None,
    keys: tuple[str, str] = ("sk-a-0000000000000000000", "sk-b-0000000000000000000"),
) -> str:
    """`a` then `b` for every model (a failover pair) unless `routes` says otherwise, both plain Responses upstreams
    with one key each."""
    routes = routes or '  - match: "*"\n    targets: [a/gpt-5, b/gpt-5]\n'
    return (
        "upstreams:\n"
        f"  a: {{base_url: '{fakes['a'].base_url}', api_keys: ['{keys[0]}']}}\n"
        f"  b: {{base_url: '{fakes['b'].base_url}', api_keys: ['{keys[1]}']}}\n"
        f"routes:\n{routes}{extra}"
    )


def only(upstream: str, match: str = "*") -> str:
    """The routes block sending every model that matches to `upstream` alone (its `gpt-5`)."""
    return f"  - {{match: '{match}', targets: [{upstream}/gpt-5]}}\n"
