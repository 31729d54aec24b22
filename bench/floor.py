"""The pass-through floor: the smallest useful ASGI app between a client and the Responses upstream.

It forwards each request body, untouched, to POST {OPENAI_BASE_URL}/responses through one shared
aiohttp session (the fastest Python HTTP client measured here; the gateway uses aiohttp too) and streams the
upstream bytes back. No parsing, no translation: whatever the gateway costs above this is the price of its own
work, and this is the limit for Python + uvicorn.

Run: OPENAI_BASE_URL=http://127.0.0.1:<up>/v1 python -m bench.floor --host 127.0.0.1 --port <port>
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

POOL_SIZE = 2048


async def read_body(receive: Receive) -> bytes:
    """Collect the request body from `http.request` messages."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class FloorApp:
    """Raw ASGI callable: lifespan owns the client, every HTTP request is forwarded verbatim."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.url = base_url.rstrip("/") + "/responses"
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {api_key}"}
        self.client: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=POOL_SIZE),
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=600.0),
                    auto_decompress=False,
                    skip_auto_headers=("Accept-Encoding", "User-Agent"),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, receive: Receive, send: Send) -> None:
        assert self.client is not None, "lifespan startup did not run"
        body = await read_body(receive)
        async with self.client.post(self.url, data=body, headers=self.headers) as response:
            content_type = response.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", content_type)],
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def main(argv: list[str] | None = None) -> None:
    """Serve the floor with uvicorn (uvloop + httptools, one worker)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    app = FloorApp(os.environ["OPENAI_BASE_URL"], os.environ.get("OPENAI_API_KEY", "sk-bench"))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
