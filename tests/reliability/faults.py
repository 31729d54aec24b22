"""Fault-injection helpers: a raw TCP upstream on 127.0.0.1, a raw ASGI driver, and leak checks."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from messages_bridge.upstream.aiohttp_transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]}
# The upstream statuses that are retried, with the status and error type the client gets once the retries are spent.
RETRIED = [
    (429, 429, "rate_limit_error"),
    (500, 500, "api_error"),
    (502, 500, "api_error"),
    (503, 529, "overloaded_error"),
    (504, 504, "timeout_error"),
    (529, 529, "overloaded_error"),
]


def ok_response(text: str = "done", output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A completed Responses API response with one text message (or the given output items)."""
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_ok",
        "object": "response",
        "created_at": 1,
        "model": "gpt-5",
        "status": "completed",
        "output": output if output is not None else [message],
        "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
    }


@dataclass
class RawUpstream:
    """Every connection is handed to `handler`; counts connections and when their peer (the gateway) closed."""

    handler: Handler
    port: int = 0
    opened: int = 0
    closed: int = 0
    peer_closed_at: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self.closed += 1


@asynccontextmanager
async def raw_upstream(handler: Handler) -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(handler)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request with a content-length body; returns the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def response_head(status: int = 200, *, content_type: bytes = b"text/event-stream", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-type: %s\r\n%s\r\n" % (status, content_type, extra)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def wait_peer_close(upstream: RawUpstream, reader: asyncio.StreamReader) -> None:
    """Block until the gateway closes the connection; record when."""
    while await reader.read(65536):
        pass
    upstream.peer_closed_at.append(time.monotonic())


@asynccontextmanager
async def blackhole() -> AsyncIterator[int]:
    """A port on 127.0.0.1 where connects hang: a listener with a full backlog that never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # fill the accept queue; later SYNs are dropped, so connect() hangs
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll state owned by other components (servers, the pool) until `predicate()` holds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - no event to wait on: the state belongs to other code
            await asyncio.sleep(0.01)


def busy_connections(app: Starlette) -> int:
    """Upstream responses the gateway's transport still holds open (their connection is not released)."""
    transport = app.state.gateway.client.transport
    assert isinstance(transport, AiohttpTransport), "fault tests exercise the production transport"
    return transport.open_responses


async def leftover_tasks(baseline: set[asyncio.Task[Any]], within: float = 1.0) -> set[asyncio.Task[Any]]:
    """Tasks started since `baseline` that are still running after `within` seconds (ideally none)."""
    deadline = time.monotonic() + within
    while True:
        extra = asyncio.all_tasks() - baseline - {asyncio.current_task()}
        if not extra or time.monotonic() > deadline:
            return {t for t in extra if not t.done()}
        await asyncio.sleep(0.02)


async def assert_released(app: Starlette, baseline: set[asyncio.Task[Any]]) -> None:
    """No upstream connection in use and no task left behind by the request."""
    leftover = await leftover_tasks(baseline)
    assert not leftover, leftover
    assert busy_connections(app) == 0


def http_scope(path: str = "/v1/messages", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"gateway.test"), (b"content-type", b"application/json"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


@dataclass
class RawCall:
    """One request driven straight through the ASGI app, with a client that can vanish at any moment."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def start_call(app: Starlette, body: bytes, path: str = "/v1/messages") -> tuple[RawCall, asyncio.Task[None]]:
    call = RawCall()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await call.gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        call.sent.append(dict(message))

    return call, asyncio.create_task(app(http_scope(path), receive, send))


RETRYING = {"max_retries": 2, "max_retry_wait": 1.0, "retry_budget": 5.0}
SECRETS = ("sk-upstream-secret",)


class Gateway:
    def __init__(self, app: Starlette, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http
        self.baseline = asyncio.all_tasks()

    async def post(self, body: dict[str, Any] = MESSAGE) -> httpx.Response:
        return await self.http.post("/v1/messages", json=body)

    async def released(self) -> None:
        await assert_released(self.app, self.baseline)
