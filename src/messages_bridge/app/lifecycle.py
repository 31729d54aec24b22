"""The app's lifecycle state: requests in flight on the upstream routes, and draining on shutdown.

Draining starts at the first SIGTERM/SIGINT (or at lifespan shutdown when another server runs the app): new
upstream requests get 529 with `retry-after`, `/readyz` answers 503, and open streams may finish. The signal
handler is chained in front of the server's own (uvicorn's), which it calls once nothing is in flight or the
grace period is over; a second signal goes straight to the server. This works in every uvicorn worker process,
because each worker runs the app's lifespan, without replacing uvicorn's `Server`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from messages_bridge.app.background import spawn

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Lifecycle:
    """Counters for one app instance; mutated only on the event loop thread (no lock needed)."""

    def __init__(self, *, max_concurrency: int, grace: float) -> None:
        self.max_concurrency = max_concurrency
        self.grace = grace
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()

    def enter(self) -> None:
        """An upstream request starts (admitted)."""
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        """An upstream request ended, however it ended."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    def begin_drain(self) -> None:
        self.draining = True

    async def wait_idle(self, within: float) -> bool:
        """Wait until no upstream request is in flight; False when `within` seconds ran out first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


SignalHandler = Callable[[int, FrameType | None], Any]


def install_drain_on_signal(lifecycle: Lifecycle) -> Callable[[], None]:
    """Chain a draining handler before the current SIGTERM/SIGINT handlers; returns the undo function.

    A no-op outside the main thread (signals cannot be handled there; the tests' threaded servers).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, SignalHandler] = {}
    for sig in DRAIN_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = handler
            signal.signal(sig, _drain_handler(lifecycle, loop, handler))

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return undo


def _drain_handler(lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop, server: SignalHandler) -> SignalHandler:
    def handle(sig: int, frame: FrameType | None) -> None:
        if lifecycle.draining:
            server(sig, frame)  # a second signal: stop now
            return
        lifecycle.begin_drain()
        loop.call_soon_threadsafe(_spawn_hand_over, lifecycle, server, sig)

    return handle


def _spawn_hand_over(lifecycle: Lifecycle, server: SignalHandler, sig: int) -> None:
    spawn(_hand_over(lifecycle, server, sig))


async def _hand_over(lifecycle: Lifecycle, server: SignalHandler, sig: int) -> None:
    """Once idle (or after the grace period), let the server shut down as it would have at the signal."""
    await lifecycle.wait_idle(lifecycle.grace)
    server(sig, None)


@asynccontextmanager
async def drained_on_exit(lifecycle: Lifecycle, grace: float) -> AsyncIterator[None]:
    """Serve with SIGTERM/SIGINT draining; on exit refuse new requests and let open ones finish (up to `grace`)."""
    undo_signals = install_drain_on_signal(lifecycle)
    try:
        yield
    finally:
        lifecycle.begin_drain()
        await lifecycle.wait_idle(grace)
        undo_signals()
