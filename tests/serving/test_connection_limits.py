"""Client-side limits, enforced by the connection protocol before a request reaches the app (real sockets).

Each class of hostile client: an oversized head (one giant header, a giant URL, too many headers), a head sent
a byte at a time or not at all, a body that stalls or trickles, and more connections than the cap. Nothing here
asserts a duration: the server's answer (431, 408, 503 or a close) is the outcome; waits are bounded only so a
broken server fails the test instead of hanging it. Work is bounded structurally (bytes handed to the parser)
and memory in bytes (tracemalloc over every thread, the server's included).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from array import array
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import pytest
import uvicorn

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.serving import protocol as guarded
from messages_bridge.serving.options import connection_limits, uvicorn_options
from messages_bridge.serving.protocol import FEED_BYTES
from tests.servers import ThreadedServer, serving

LIMITS: dict[str, Any] = {"max_header_bytes": 16 * 1024, "max_headers": 32, "header_timeout": 0.5, "body_timeout": 0.5}
LIMITS |= {"min_body_rate": 2000, "max_client_connections": 4}
WAIT = 10.0  # the most any socket read waits: a hang fails the test instead of blocking the run


@dataclass
class EchoApp:
    """Reads the whole body, answers its length; remembers every request and what `receive` returned."""

    requests: list[str] = field(default_factory=list)
    disconnects: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests.append(scope["path"])
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(0.5)
        body = json.dumps({"size": size}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def guarded_server(**overrides: Any) -> Iterator[tuple[ThreadedServer, EchoApp]]:
    app = EchoApp()
    settings = Settings(**{**LIMITS, **overrides})
    with serving(app, **uvicorn_options(settings, open_files=None)) as server:
        yield server, app


def connect(server: ThreadedServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, headers, body), or (0, {}, b"") when the server closed without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return (0, {}, b"") if not data else pytest.fail(f"truncated head {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_refused(reply: tuple[int, dict[str, str], bytes], status: int, error_type: str) -> dict[str, Any]:
    code, headers, body = reply
    assert code == status, reply
    assert headers["connection"] == "close" and headers["request-id"].startswith("req_")
    envelope = json.loads(body)
    assert envelope["type"] == "error" and envelope["error"]["type"] == error_type
    assert envelope["request_id"] == headers["request-id"]
    return dict(envelope)


def request(path: str = "/v1/messages", body: bytes = b"", headers: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        headers,
        body,
    )


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@contextmanager
def fed_bytes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Bytes handed to the HTTP parser (the parser's work), counted by the parser uvicorn's protocol creates."""
    counted: list[int] = []

    class CountingParser(httptools.HttpRequestParser):
        def feed_data(self, data: bytes | bytearray | memoryview | array[int]) -> None:
            counted.append(len(data))
            super().feed_data(data)

    monkeypatch.setattr(httptools, "HttpRequestParser", CountingParser)
    yield counted


# --- the head: size and count --------------------------------------------------------------------------------------

FLOOD = 32 * 1024 * 1024  # what the hostile client tries to send in its head


def flood_heads() -> dict[str, Iterator[bytes]]:
    """Heads that never end within FLOOD bytes, each as a stream of 64 KiB writes."""

    def endless(opening: bytes, unit: bytes) -> Iterator[bytes]:
        yield opening
        block = unit * (65536 // len(unit))
        for _ in range(FLOOD // len(block)):
            yield block

    return {
        "one_header": endless(b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: ", b"a"),
        "url": endless(b"GET /healthz?q=", b"a"),
        "many_headers": endless(b"GET /healthz HTTP/1.1\r\nhost: t\r\n", b"x-h: v\r\n"),
        "header_names": endless(b"GET /healthz HTTP/1.1\r\nhost: t\r\n", b"x-very-long-name-"),
    }


def send_in_background(sock: socket.socket, writes: Iterator[bytes]) -> threading.Thread:
    def run() -> None:
        try:
            for data in writes:
                sock.sendall(data)
        except OSError:
            pass  # the server refused and dropped the connection: the expected end

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("shape", ["one_header", "url", "many_headers", "header_names"])
def test_flooded_head_is_431_before_the_app_with_bounded_work(monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    with fed_bytes(monkeypatch) as fed, guarded_server() as (server, app), closing(connect(server)) as sock:
        tracemalloc.start()
        try:
            sender = send_in_background(sock, flood_heads()[shape])
            reply = read_reply(sock)
            sender.join(WAIT)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert_refused(reply, 431, "invalid_request_error")
    assert app.requests == []
    assert 16 * 1024 < sum(fed) <= 16 * 1024 + FEED_BYTES, sum(fed)  # the limit and one piece, not 32 MiB
    assert peak < 4 * 1024 * 1024, peak


def test_too_many_small_headers_is_431() -> None:
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(40))  # 40 > 32 fields, ~400 bytes
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        sock.sendall(request(headers=headers))
        assert_refused(read_reply(sock), 431, "invalid_request_error")
    assert app.requests == []


def test_heads_just_under_the_limits_with_a_body_in_the_same_write_pass() -> None:
    """A head near both limits, sent in one write with a 1 MiB body (the read that ends a head carries body too)."""
    headers = b"".join(b"x-h%02d: %s\r\n" % (i, b"v" * 400) for i in range(28))
    body = b"{" + b" " * (1 << 20) + b"}"
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        for _ in range(3):  # and again on the same kept-alive connection
            sock.sendall(request(body=body, headers=headers))
            code, _, answer = read_reply(sock)
            assert code == 200 and json.loads(answer) == {"size": len(body)}
    assert len(app.requests) == 3


def test_an_oversized_pipelined_head_never_cuts_into_the_answer_before_it() -> None:
    """Behind a request still being answered nothing can be written, so the connection is closed instead of a 431."""
    oversized = b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * (32 * 1024) + b"\r\n\r\n"
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        sock.sendall(request(path="/slow", body=b"{}") + oversized)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b"431" not in received and (received == b"" or received.startswith(b"HTTP/1.1 200"))
    assert app.requests == ["/slow"]


# --- slow or silent clients ----------------------------------------------------------------------------------------


def trickle(sock: socket.socket, data: bytes, every: float = 0.05) -> int:
    """Send `data` a byte at a time until the server closes; how many bytes got through."""
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return sent
        time.sleep(every)
    return len(data)


def test_head_sent_a_byte_at_a_time_is_408() -> None:
    head = b"GET /healthz HTTP/1.1\r\nhost: t\r\n" + b"x-pad: " + b"a" * 400 + b"\r\n\r\n"
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        reply: list[tuple[int, dict[str, str], bytes]] = []
        reader = threading.Thread(target=lambda: reply.append(read_reply(sock)), daemon=True)
        reader.start()
        sent = trickle(sock, head)
        reader.join(WAIT)
    assert sent < len(head)  # cut off while still sending its head
    assert_refused(reply[0], 408, "timeout_error")
    assert app.requests == []


def test_connection_that_sends_nothing_is_closed() -> None:
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        assert closed_by_server(sock)
    assert app.requests == []


def test_next_head_on_a_kept_alive_connection_is_timed_too() -> None:
    with guarded_server(header_timeout=0.5) as (server, _), closing(connect(server)) as sock:
        sock.sendall(request(body=b"{}"))
        assert read_reply(sock)[0] == 200
        reply: list[tuple[int, dict[str, str], bytes]] = []
        reader = threading.Thread(target=lambda: reply.append(read_reply(sock)), daemon=True)
        reader.start()
        sent = trickle(sock, b"GET /healthz HTTP/1.1\r\nhost: t\r\n" + b"x-pad: " + b"a" * 400 + b"\r\n\r\n")
        reader.join(WAIT)
    assert sent < 400
    assert_refused(reply[0], 408, "timeout_error")


def test_stalled_body_is_408_and_the_app_sees_a_disconnect() -> None:
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        sock.sendall(request(body=b"x" * 1000)[:-990])  # the head and 10 bytes of the body, then silence
        assert_refused(read_reply(sock), 408, "timeout_error")
        assert closed_by_server(sock)
    assert app.requests == ["/v1/messages"] and app.disconnects == 1


def test_body_sent_a_byte_at_a_time_is_408() -> None:
    """Never silent for long (a stall timeout alone would not catch it), but far below the minimum rate."""
    body = b"x" * 5000
    with guarded_server() as (server, app), closing(connect(server)) as sock:
        reply: list[tuple[int, dict[str, str], bytes]] = []
        sock.sendall(request(body=body)[: -len(body)])
        reader = threading.Thread(target=lambda: reply.append(read_reply(sock)), daemon=True)
        reader.start()
        sent = trickle(sock, body)
        reader.join(WAIT)
    assert sent < len(body)
    assert_refused(reply[0], 408, "timeout_error")
    assert app.disconnects == 1


def test_large_body_at_a_fair_rate_passes() -> None:
    """8 MiB in 64 KiB writes: well above the minimum rate, so the body allowance keeps growing with it."""
    body = b"{" + b" " * (8 << 20) + b"}"
    with guarded_server() as (server, _), closing(connect(server)) as sock:
        data = request(body=body)
        for start in range(0, len(data), 65536):
            sock.sendall(data[start : start + 65536])
        code, _, answer = read_reply(sock)
    assert code == 200 and json.loads(answer) == {"size": len(body)}


# --- the connection cap --------------------------------------------------------------------------------------------


def test_connections_beyond_the_cap_get_503_and_the_cap_frees_up() -> None:
    with guarded_server(header_timeout=30) as (server, app):
        idle = [connect(server) for _ in range(4)]
        try:
            with closing(connect(server)) as extra:
                extra.sendall(request(path="/healthz"))
                envelope = assert_refused(read_reply(extra), 503, "overloaded_error")
                assert "connections" in envelope["error"]["message"]
            with closing(connect(server)) as extra:
                _, headers, _ = read_reply(extra)  # refused at once, before it sends anything
                assert headers["retry-after"] == "1"
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + WAIT
        while True:  # the server notices the closes asynchronously; bounded
            with closing(connect(server)) as sock:
                sock.sendall(request(body=b"{}"))
                if read_reply(sock)[0] == 200:
                    break
            assert time.monotonic() < deadline, "the cap never freed up"
            time.sleep(0.05)
    assert app.requests == ["/v1/messages"]


# --- settings → uvicorn --------------------------------------------------------------------------------------------


def test_the_cap_fits_the_open_file_limit() -> None:
    settings = Settings(max_client_connections=4096)
    assert connection_limits(settings, 1 << 20).max_connections == 4096
    assert connection_limits(settings, 1024).max_connections == (1024 - 64) // 2
    assert connection_limits(settings, None).max_connections == 4096


def test_the_gateway_answers_healthz_while_a_head_flood_is_refused(
    app_factory: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real app behind the real options: the flood gets 431, another client is served meanwhile."""
    settings = make_settings(**LIMITS)
    options = uvicorn_options(settings, open_files=None)
    with (
        fed_bytes(monkeypatch) as fed,
        serving(create_app(settings), **options) as server,
        closing(connect(server)) as flood,
        closing(connect(server)) as other,
    ):
        sender = send_in_background(flood, flood_heads()["one_header"])
        other.sendall(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        assert read_reply(other)[0] == 200
        assert_refused(read_reply(flood), 431, "invalid_request_error")
        sender.join(WAIT)
    assert 16 * 1024 < sum(fed) <= 2 * (16 * 1024 + FEED_BYTES)


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    script = (
        "import resource\n"
        "from messages_bridge.serving.options import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "got = raise_open_file_limit()\n"
        "print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    got, soft, hard = out.stdout.split()
    assert got == soft
    assert int(soft) == min(int(hard), 1 << 20)


def test_serve_starts_uvicorn_with_the_guarded_protocol(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from messages_bridge import cli

    started: dict[str, Any] = {}
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(kwargs, app=app))
    monkeypatch.setattr(cli, "raise_open_file_limit", lambda: 1 << 16)
    monkeypatch.setattr(cli, "configure_logging", lambda settings: None)  # leave logging alone
    assert cli.serve(Settings(**LIMITS)) == 0
    factory = started["http"]
    assert factory.func is guarded.GuardedHttpProtocol and started["ws"] == "none"
    assert factory.keywords["limits"] == guarded.ConnectionLimits(
        max_header_bytes=16 * 1024,
        max_headers=32,
        header_timeout=0.5,
        body_timeout=0.5,
        min_body_rate=2000,
        max_connections=4,
    )
