"""The test servers (tests/servers.py): a pooled server carries nothing of one use into the next."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.servers import serving


def named(name: str, events: list[str], hang: asyncio.Event | None = None) -> Starlette:
    """An app answering its name, recording its lifespan; with `hang`, its answer waits for that event."""

    async def hello(_: Request) -> PlainTextResponse:
        if hang is not None:
            await hang.wait()
        return PlainTextResponse(name)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        events.append(f"{name} up")
        yield
        events.append(f"{name} down")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


def test_each_use_gets_its_own_app_and_lifespan_and_no_old_connection() -> None:
    events: list[str] = []
    with serving(named("one", events)) as first:
        kept = socket.create_connection(("127.0.0.1", first.port), timeout=5)
        kept.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"one") and (chunk := kept.recv(4096)):  # the head and the body may come apart
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"one")
        assert events == ["one up"]
    with kept:
        assert kept.recv(1) == b""  # the kept-alive connection was closed at the end of the use
    assert events == ["one up", "one down"]
    with serving(named("two", events)) as second, httpx.Client(timeout=5) as http:
        assert second.port == first.port  # the same listening server, now with the second app
        assert http.get(second.url).text == "two"
    assert events == ["one up", "one down", "two up", "two down"]


def test_a_request_still_running_at_the_end_is_cut_and_its_connection_closed() -> None:
    events: list[str] = []
    with serving(named("held", events, hang=asyncio.Event())) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        sock.settimeout(0.2)
        try:
            sock.recv(1)
            raise AssertionError("the held request answered")
        except TimeoutError:
            pass
        sock.settimeout(5)
    with sock:
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes the connection
            answer += chunk
    assert b"held" not in answer
    assert events == ["held up", "held down"]
