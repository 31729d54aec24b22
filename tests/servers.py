"""Real HTTP servers on 127.0.0.1 for the tests: the fake upstream and the gateway, each uvicorn in a thread.

Starting and stopping uvicorn costs a few hundred milliseconds (its main loop and its shutdown poll every 0.1 s), and
most tests start one to four servers. So `serving(app)` without uvicorn options leases an already listening server
from a pool and plugs `app` into it: the app's lifespan runs as uvicorn would run it, and at the end every connection
is closed and every request task cancelled, so nothing of one test reaches the next. Servers with options (the
gateway's production protocol and limits) are started and stopped for each use, and stop without polling.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.lifespan.on import LifespanOn

# Every wait here is bounded: a server that does not start, drain or stop within it fails the test.
WAIT = 10.0


@functools.cache
def _ports() -> range:
    """This process's ports: below the kernel's ephemeral range (so no outgoing connection takes one between a
    `free_port()` and the child's bind), and under pytest-xdist only those `≡ worker index (mod workers)`, so two
    workers never hand out the same port."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    low = 10_000 + (index - 10_000) % workers
    return range(low, ephemeral_low, workers)


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free port of this process on 127.0.0.1 (see `_ports`); the caller owns it."""
    ports = _ports()
    for _ in range(1000):
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so (else Nagle adds 40 ms waits).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind(("127.0.0.1", random.choice(ports)))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError("no free port on 127.0.0.1")


def free_port() -> int:
    """A port nothing listens on now, for a child process to bind (in-process servers keep `bound_socket()`)."""
    with bound_socket() as sock:
        return int(sock.getsockname()[1])


def _config(app: Any, port: int, **options: Any) -> uvicorn.Config:
    # A cloud-like keep-alive (uvicorn's 5 s default is unusually short): under the soak test's load the
    # gateway's event loop can lag past 5 s, and the server then closes idle connections the gateway is
    # about to reuse. The gateway drops idle upstream connections after BRIDGE_UPSTREAM_KEEPALIVE (4 s).
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=75,
        **options,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, whose main loop wakes at once when told to exit instead of at its next 0.1 s tick."""

    wake: asyncio.Future[None] | None = None

    async def main_loop(self) -> None:
        self.wake = asyncio.get_running_loop().create_future()  # a future, not a task: `_Pooled` cancels stray tasks
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.wait({self.wake}, timeout=0.1)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ThreadedServer:
    """uvicorn serving `app` on 127.0.0.1 in a background thread (its own event loop)."""

    def __init__(self, app: Any, *, port: int | None = None, **options: Any) -> None:
        # A given port is bound by uvicorn; otherwise the socket bound here is handed over (no find-then-bind race).
        self.socket: socket.socket | None = None
        if port:
            self.port = port
        else:
            self.socket = bound_socket()
            self.port = int(self.socket.getsockname()[1])
        self.server = _Server(_config(app, self.port, **options))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve(sockets=None if self.socket is None else [self.socket])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        self.server.should_exit = True
        wake, loop = self.server.wake, self.loop
        if wake is not None and loop is not None:
            with suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(_wake, wake)
        self.thread.join(timeout=WAIT)

    def call(self, coroutine: Any) -> Any:
        """Runs `coroutine` on the server's event loop and returns its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=2 * WAIT)


class _Switchboard:
    """The pooled server's ASGI app: passes each connection to the app plugged in, with that app's lifespan state."""

    def __init__(self) -> None:
        self.app: Any = None
        self.state: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the plugged-in apps' lifespans run in `_Pooled.plug` and `unplug`
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.app is None:
            raise RuntimeError("a request reached a pooled test server with no app plugged in")
        await self.app({**scope, "state": dict(self.state)}, receive, send)


class _Pooled(ThreadedServer):
    """A listening server whose app is swapped per use."""

    def __init__(self) -> None:
        self.switchboard = _Switchboard()
        super().__init__(self.switchboard)
        self.lifespan: LifespanOn | None = None
        self.own_tasks: set[asyncio.Task[Any]] = set()

    def plug(self, app: Any) -> None:
        # A Config per use, as a fresh server would build: it loads the app (with uvicorn's middleware) for its
        # lifespan and configures uvicorn's logging the same way.
        config = _config(app, self.port)
        self.call(self._start_lifespan(config))
        self.switchboard.app = app

    async def _start_lifespan(self, config: uvicorn.Config) -> None:
        self.own_tasks = asyncio.all_tasks()  # uvicorn's serving task; everything started later is the app's
        self.lifespan = LifespanOn(config)
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise RuntimeError("server did not start")
        self.switchboard.state = self.lifespan.state

    def unplug(self) -> None:
        try:
            self.call(self._drain())
        finally:
            self.switchboard.app = None
            self.switchboard.state = {}

    async def _drain(self) -> None:
        """What uvicorn does at shutdown, without its polling or its grace period: close idle connections, cancel
        the requests still running, drop their connections, run the app's lifespan shutdown; then, as `asyncio.run`
        does when a server's loop ends, cancel whatever tasks the app left behind."""
        state = self.server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        for task in list(state.tasks):
            task.cancel()
        await asyncio.sleep(0)
        for connection in list(state.connections):
            connection.transport.close()
        deadline = time.monotonic() + WAIT
        while state.connections or state.tasks:
            if time.monotonic() > deadline:
                raise RuntimeError("a pooled test server did not drain")
            await asyncio.sleep(0.001)
        if self.lifespan is not None:
            lifespan, self.lifespan = self.lifespan, None
            await lifespan.shutdown()
        left = asyncio.all_tasks() - self.own_tasks - {asyncio.current_task()}
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=WAIT)


class _Pool:
    """Idle listening servers, started on first need and stopped at the end of the test session."""

    def __init__(self) -> None:
        self.idle: list[_Pooled] = []
        self.all: list[_Pooled] = []
        self.lock = threading.Lock()

    def take(self) -> _Pooled:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        server = _Pooled()
        server.start()
        with self.lock:
            self.all.append(server)
        return server

    def give_back(self, server: _Pooled) -> None:
        with self.lock:
            self.idle.append(server)

    def close(self) -> None:
        with self.lock:
            servers, self.all, self.idle = self.all, [], []
        for server in servers:
            server.stop()


POOL = _Pool()


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[ThreadedServer]:
    """`app` on 127.0.0.1; `options` go to `uvicorn.Config` (the gateway's own: `serving.options.uvicorn_options`)."""
    if options:
        server = ThreadedServer(app, **options)
        server.start()
        try:
            yield server
        finally:
            server.stop()
        return
    pooled = POOL.take()
    try:
        pooled.plug(app)
    except BaseException:
        pooled.stop()  # its state is unknown: it does not go back to the pool
        raise
    try:
        yield pooled
    finally:
        healthy = False
        try:
            pooled.unplug()
            healthy = True
        finally:
            if healthy:
                POOL.give_back(pooled)
            else:
                pooled.stop()
