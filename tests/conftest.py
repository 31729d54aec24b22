"""Shared fixtures: the fake upstream (the demo simulator + a Script) over real HTTP, and the gateway app."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.server import Script, create_upstream_app
from messages_bridge.serving.options import uvicorn_options
from tests.servers import POOL, ThreadedServer, serving
from tests.upstream_schema import assert_valid_count, assert_valid_create

pytest_plugins = ["tests.services"]

GATEWAY = "http://gateway.test"


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the collection imported (the SDKs' type modules, the app, the fixtures) lives to the end of the run:
    frozen, it is left out of every garbage collection (each full one walked it all; the memory tests collect).
    Its garbage is collected first, so none of it is pinned (as `serving.heap.settle` does for the server)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True, scope="session")
def _bridge_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every gateway of the suite (in-process or child process) keeps its SQLite ledger in a temp dir."""
    previous = os.environ.get("BRIDGE_DATA_DIR")
    os.environ["BRIDGE_DATA_DIR"] = str(tmp_path_factory.mktemp("bridge-data"))
    yield
    if previous is None:
        os.environ.pop("BRIDGE_DATA_DIR", None)
    else:
        os.environ["BRIDGE_DATA_DIR"] = previous


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """`main()` exports its flags into os.environ (for worker processes): no test may leak them into the next
    (a leaked BRIDGE_WORKERS=2 made an unrelated serve check refuse to start)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


class FakeUpstream:
    """The simulator on 127.0.0.1 with a script; `requests` are the bodies the gateway sent, schema-checked."""

    def __init__(self, server: ThreadedServer, script: Script) -> None:
        self.server = server
        self.script = script

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    @property
    def query(self) -> list[str]:
        return [r.query for r in self.script.received]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.script.received]

    def release(self, event: asyncio.Event) -> None:
        """Sets `event` on the upstream's event loop: a `Reply(hang=..., until=event)` answers now."""
        self.server.call(_set(event))

    def check_schema(self) -> None:
        for received in self.script.received:
            if received.path.endswith("/input_tokens"):
                assert_valid_count(received.body)
            else:
                assert_valid_create(received.body)


async def _set(event: asyncio.Event) -> None:
    event.set()


@pytest.fixture(scope="session", autouse=True)
def _server_pool() -> Iterator[None]:
    """The pooled test servers (tests/servers.py) stop with the session."""
    yield
    POOL.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    script = Script()
    with serving(create_upstream_app(script)) as server:
        fake = FakeUpstream(server, script)
        yield fake
        fake.check_schema()


@pytest.fixture
def make_settings(upstream: FakeUpstream) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"openai_api_key": "sk-upstream-secret", "openai_base_url": upstream.base_url}
        # One scripted reply = one answer (tests/reliability opts in to retries); a short drain at teardown.
        values |= {"max_retries": 0, "shutdown_grace": 2.0}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def app_factory() -> AsyncIterator[Callable[[Settings], Any]]:
    """Builds gateway apps with their lifespan running; all are shut down at teardown."""
    stack: list[Any] = []

    async def make(settings: Settings) -> Starlette:
        app = create_app(settings)
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        stack.append(ctx)
        return app

    yield make
    for ctx in reversed(stack):
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def client(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the gateway in-process (ASGITransport) with a real upstream on 127.0.0.1."""
    app = await app_factory(make_settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        yield http


@pytest.fixture
def gateway_server(make_settings: Callable[..., Settings]) -> Iterator[ThreadedServer]:
    """The gateway served by uvicorn on 127.0.0.1 (for the official SDKs and Claude Code), with the production
    connection protocol and its limits."""
    settings = make_settings()
    with serving(create_app(settings), **uvicorn_options(settings, open_files=None)) as server:
        yield server
