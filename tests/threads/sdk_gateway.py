"""A gateway on 127.0.0.1 for the SDK thread tests that records every /v1/messages exchange (body, status, error)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.service import ThreadService
from tests.servers import ThreadedServer, serving

KEY = "gw-thread-key"
CONTROL_PATH = "/__test/control"
TURNS = 20  # the tool loop every SDK test runs: `step` called TURNS times, then this answer
ANSWER = f"The tool returned {TURNS} results: " + ", ".join(f"r{n}" for n in range(1, TURNS + 1))


@dataclass
class Exchange:
    headers: dict[str, str]
    raw: bytearray = field(default_factory=bytearray)
    status: int = 0
    error: bytearray = field(default_factory=bytearray)

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(bytes(self.raw))
        return value

    @property
    def thread(self) -> dict[str, Any] | None:
        return self.body.get("thread")

    @property
    def error_code(self) -> str | None:
        if self.status < 400:
            return None
        details = json.loads(bytes(self.error))["error"].get("details") or {}
        return details.get("error_code")


async def _nothing(_: str) -> None:
    return None


class Recorder:
    """ASGI wrapper: each POST /v1/messages as an `Exchange`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []
        self.on_control: Callable[[str], Awaitable[None]] = _nothing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == CONTROL_PATH:  # a test hook for out-of-process clients
            await self.on_control(scope["query_string"].decode())
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] != "http" or scope["path"] != "/v1/messages":
            await self.app(scope, receive, send)
            return
        exchange = Exchange({k.decode(): v.decode() for k, v in scope["headers"]})
        self.exchanges.append(exchange)

        async def received() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                exchange.raw += message.get("body", b"")
            return message

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
            elif message["type"] == "http.response.body" and exchange.status >= 400:
                exchange.error += message.get("body", b"")
            await send(message)

        await self.app(scope, received, sending)

    @property
    def threads(self) -> ThreadService:
        threads: ThreadService = self.app.state.gateway.threads
        return threads

    @property
    def store(self) -> MemoryThreadStore:
        store = self.threads.store
        assert isinstance(store, MemoryThreadStore)
        return store


@dataclass
class SdkGateway:
    server: ThreadedServer
    recorder: Recorder

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def exchanges(self) -> list[Exchange]:
        return self.recorder.exchanges


@contextmanager
def sdk_gateway(settings: Settings) -> Iterator[SdkGateway]:
    recorder = Recorder(create_app(settings))
    with serving(recorder) as server:
        yield SdkGateway(server, recorder)


def check_threaded_loop(exchanges: list[Exchange], turns: int) -> None:
    """A create with the whole prompt, then `turns` continues that each send only the new tool results."""
    assert [e.status for e in exchanges] == [200] * (turns + 1)
    first, rest = exchanges[0], exchanges[1:]
    assert first.thread == {"type": "create"}
    assert "message-threads-2026-08-12" in first.headers.get("anthropic-beta", "")
    assert "system" in first.body and "tools" in first.body
    for previous, exchange in zip(exchanges, rest, strict=False):
        body = exchange.body
        assert body["thread"]["type"] == "continue"
        assert "system" not in body and "tools" not in body
        assert len(body["messages"]) == 1  # only the new turn: the tool results
        assert {b["type"] for b in body["messages"][0]["content"]} == {"tool_result"}
        assert previous.status == 200


def check_unthreaded_loop(exchanges: list[Exchange], turns: int) -> None:
    """One `thread_unsupported_request`, then the whole conversation on every turn without `thread`."""
    assert exchanges[0].status == 400 and exchanges[0].error_code == "thread_unsupported_request"
    rest = exchanges[1:]
    assert [e.status for e in rest] == [200] * (turns + 1)
    assert all("thread" not in e.body for e in rest)
    assert [len(e.body["messages"]) for e in rest] == [1 + 2 * i for i in range(turns + 1)]


def replayed_after(gateway: SdkGateway, code: str) -> None:
    """One rejection with `code`, then a create resending the whole conversation, then continues again."""
    exchanges = gateway.exchanges
    rejected = [i for i, e in enumerate(exchanges) if e.status != 200]
    assert len(rejected) == 1, [(e.status, e.error_code) for e in exchanges]
    i = rejected[0]
    assert exchanges[i].error_code == code
    replay = exchanges[i + 1]
    assert replay.thread == {"type": "create"}
    assert len(replay.body["messages"]) == 1 + 2 * i  # the prompt, then i replies and i tool results
    assert all(e.thread is not None and e.thread["type"] == "continue" for e in exchanges[i + 2 :])
