"""Real HTTP servers on 127.0.0.1 for the tests: the fake upstream and the gateway, each uvicorn in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """uvicorn serving `app` on 127.0.0.1 in a background thread (its own event loop)."""

    def __init__(self, app: Any, *, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        # A cloud-like keep-alive (uvicorn's 5 s default is unusually short): under the soak test's load the
        # gateway's event loop can lag past 5 s, and the server then closes idle connections the gateway is
        # about to reuse. The gateway drops idle upstream connections after BRIDGE_UPSTREAM_KEEPALIVE (4 s).
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="auto",
                                timeout_graceful_shutdown=2, timeout_keep_alive=75, **options)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[ThreadedServer]:
    """`app` on 127.0.0.1; `options` go to `uvicorn.Config` (the gateway's own: `serving.options.uvicorn_options`)."""
    server = ThreadedServer(app, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
