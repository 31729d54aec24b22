"""A fast fake OpenAI Responses upstream on raw asyncio + httptools (uvloop when available).

Routes:
  POST /v1/responses               non-stream `Response` JSON, or an SSE stream when the body has "stream": true
  POST /v1/responses/input_tokens  {"object": "response.input_tokens", "input_tokens": 123}
  GET  /stats                      request counters and this process's CPU seconds
  GET  /last-request               the body of the most recent POST /v1/responses, verbatim
  POST /control                    {"shape": "text"|"tool", "deltas": N, "delta_delay_ms": X} (any subset)

Run: python -m bench.upstream --port 0   (prints "READY <port>" once listening)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import cast

import httptools
import msgspec

from bench.frames import Payloads, Shape, build_payloads
from bench.sysinfo import install_uvloop

INPUT_TOKENS_BODY = b'{"object":"response.input_tokens","input_tokens":123}'


def chunk(data: bytes) -> bytes:
    """Encode one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def response_head(status: bytes, content_type: bytes, *, length: int | None, keep_alive: bool) -> bytes:
    """Status line and headers; chunked when `length` is None."""
    framing = b"transfer-encoding: chunked" if length is None else b"content-length: %d" % length
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\n" + framing + b"\r\n"
        b"x-request-id: req_bench\r\nconnection: " + connection + b"\r\n\r\n"
    )


class _StreamFlag(msgspec.Struct):
    """Only the top-level "stream" key; msgspec skips every other key without building objects."""

    stream: bool = False


_FLAG_DECODER = msgspec.json.Decoder(_StreamFlag)


def stream_flag(body: bytes) -> bool:
    """True when the JSON body's top-level "stream" is true."""
    try:
        return _FLAG_DECODER.decode(body).stream
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from exc


@dataclass
class Config:
    """Mutable serving configuration (changed through POST /control)."""

    shape: Shape = "text"
    deltas: int = 100
    delta_delay_ms: float = 0.0


@dataclass
class Stats:
    """Counters exposed on GET /stats."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    open_streams: int = 0

    def count(self, key: str) -> None:
        """Increment one counter."""
        self.requests[key] = self.requests.get(key, 0) + 1


class Upstream:
    """Shared state: configuration, precomputed payloads and statistics."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.last_request = b"{}"
        self.payloads: Payloads = build_payloads(config.shape, config.deltas)
        self.stream_body = b""
        self.json_body = b""
        self._rebuild()

    def _rebuild(self) -> None:
        self.payloads = build_payloads(self.config.shape, self.config.deltas)
        self.stream_body = b"".join(chunk(f) for f in self.payloads.head_frames + self.payloads.delta_frames)
        self.stream_body += b"".join(chunk(f) for f in self.payloads.tail_frames) + b"0\r\n\r\n"
        self.json_body = self.payloads.json_body

    def control(self, body: bytes) -> bytes:
        """Apply a POST /control body and return the resulting configuration as JSON."""
        update = cast("dict[str, object]", json.loads(body or b"{}"))
        if "shape" in update:
            self.config.shape = cast("Shape", str(update["shape"]))
        if "deltas" in update:
            self.config.deltas = max(1, int(cast("int", update["deltas"])))
        if "delta_delay_ms" in update:
            self.config.delta_delay_ms = float(cast("float", update["delta_delay_ms"]))
        self._rebuild()
        return json.dumps(self.config.__dict__).encode()

    def stats_body(self) -> bytes:
        """GET /stats payload."""
        return json.dumps(
            {
                "cpu_s": time.process_time(),
                "requests": self.stats.requests,
                "errors": self.stats.errors,
                "open_streams": self.stats.open_streams,
                "config": self.config.__dict__,
            }
        ).encode()


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: httptools parses, `_dispatch` answers from precomputed bytes."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.slow_task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.slow_task is not None:
            self.slow_task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.upstream.stats.errors += 1
            self._close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        try:
            self._dispatch(self.parser.get_method(), self.url.split(b"?", 1)[0], b"".join(self.body))
        except (ValueError, TypeError):
            self.upstream.stats.errors += 1
            self._reply(b"400 Bad Request", b'{"error":{"message":"bad request","type":"invalid_request_error"}}')

    def _dispatch(self, method: bytes, path: bytes, body: bytes) -> None:
        up = self.upstream
        up.stats.count(f"{method.decode()} {path.decode()}")
        if method == b"POST" and path == b"/v1/responses":
            up.last_request = body
            self._responses(stream_flag(body))
        elif method == b"POST" and path == b"/v1/responses/input_tokens":
            self._reply(b"200 OK", INPUT_TOKENS_BODY)
        elif method == b"GET" and path == b"/stats":
            self._reply(b"200 OK", up.stats_body())
        elif method == b"GET" and path == b"/last-request":
            self._reply(b"200 OK", up.last_request)
        elif method == b"POST" and path == b"/control":
            self._reply(b"200 OK", up.control(body))
        else:
            self._reply(b"404 Not Found", b'{"error":{"message":"not found","type":"not_found"}}')

    def _responses(self, stream: bool) -> None:
        up = self.upstream
        if not stream:
            self._reply(b"200 OK", up.json_body)
        elif up.config.delta_delay_ms <= 0:
            head = response_head(b"200 OK", b"text/event-stream", length=None, keep_alive=self._keep_alive())
            self._write(head + up.stream_body)
            self._finish()
        else:
            self.slow_task = asyncio.get_running_loop().create_task(self._slow_stream(up.config.delta_delay_ms / 1000))

    async def _slow_stream(self, delay: float) -> None:
        up, p = self.upstream, self.upstream.payloads
        up.stats.open_streams += 1
        try:
            head = response_head(b"200 OK", b"text/event-stream", length=None, keep_alive=self._keep_alive())
            self._write(head + b"".join(chunk(f) for f in p.head_frames))
            for frame in p.delta_frames:
                await asyncio.sleep(delay)
                self._write(chunk(frame))
            self._write(b"".join(chunk(f) for f in p.tail_frames) + b"0\r\n\r\n")
            self._finish()
        finally:
            up.stats.open_streams -= 1
            self.slow_task = None

    def _reply(self, status: bytes, body: bytes) -> None:
        head = response_head(status, b"application/json", length=len(body), keep_alive=self._keep_alive())
        self._write(head + body)
        self._finish()

    def _keep_alive(self) -> bool:
        return bool(self.parser.should_keep_alive())

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _finish(self) -> None:
        if not self._keep_alive():
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, config: Config) -> None:
    """Listen forever, printing `READY <port>` once bound."""
    upstream = Upstream(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(upstream), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--deltas", type=int, default=100, help="output_text / arguments deltas per stream")
    ap.add_argument("--delta-delay-ms", type=float, default=0.0, help="sleep between deltas (slow-stream mode)")
    ap.add_argument("--shape", choices=["text", "tool"], default="text")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    install_uvloop()
    config = Config(shape=args.shape, deltas=args.deltas, delta_delay_ms=args.delta_delay_ms)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config))


if __name__ == "__main__":
    main()
