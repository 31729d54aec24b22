"""Building a `FileRouter` from the file, and reloading it on SIGHUP.

A reload builds a whole new router and swaps one reference: a request reads the router once when it starts,
so requests in flight finish on the configuration they started with. An upstream whose definition did not
change keeps its runtime (connections, breaker, benched keys); a bad file keeps the old router and logs why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import httpx

from messages_bridge.config import Settings
from messages_bridge.observability.logs import mask_secrets
from messages_bridge.routing.config_file import ConfigError, ConfigFile, UpstreamConfig, load_config
from messages_bridge.routing.router import FileRouter, UpstreamRuntime, build_upstream
from messages_bridge.upstream.retry import RetryPolicy

logger = logging.getLogger("messages_bridge.routing")
TransportFactory = Callable[[UpstreamConfig], httpx.AsyncBaseTransport]


def config_secrets(config: ConfigFile) -> list[str]:
    return [key.get_secret_value() for up in config.upstreams.values() for key in up.api_keys]


class RouterBuilder:
    """Builds routers for one app; remembers every transport it opened so shutdown can close them."""

    def __init__(self, settings: Settings, retry: RetryPolicy, make_transport: TransportFactory) -> None:
        self._settings = settings
        self._retry = retry
        self._make_transport = make_transport
        self.transports: list[httpx.AsyncBaseTransport] = []

    def build(self, config: ConfigFile, previous: FileRouter | None = None) -> FileRouter:
        upstreams: dict[str, UpstreamRuntime] = {}
        for name, definition in config.upstreams.items():
            old = previous.upstreams.get(name) if previous is not None else None
            if old is not None and old.config == definition:
                upstreams[name] = old
                continue
            transport = self._make_transport(definition)
            if all(transport is not t for t in self.transports):
                self.transports.append(transport)
            upstreams[name] = build_upstream(name, definition, transport, self._retry, self._settings)
        mask_secrets(config_secrets(config))
        return FileRouter(config, self._settings, upstreams)

    def load(self, path: str, previous: FileRouter | None = None) -> FileRouter:
        """Read, validate and build; raises `ConfigError` naming the field."""
        config, warnings = load_config(path)
        for warning in warnings:
            logger.warning(warning)
        router = self.build(config, previous)
        logger.info(
            "routing file loaded: %d upstream(s) (%s), %d route(s), allow_direct=%s",
            len(config.upstreams),
            ", ".join(config.upstreams),
            len(config.routes),
            str(config.allow_direct).lower(),
        )
        return router

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()


class Reloader:
    """Re-reads the file into `install(router)`; a failure keeps the current router and is logged."""

    def __init__(
        self,
        path: str,
        builder: RouterBuilder,
        current: Callable[[], FileRouter],
        install: Callable[[FileRouter], None],
    ) -> None:
        self._path = path
        self._builder = builder
        self._current = current
        self._install = install
        self.reloads = 0
        self.failures = 0

    def reload(self) -> bool:
        try:
            router = self._builder.load(self._path, self._current())
        except ConfigError as exc:
            self.failures += 1
            logger.error("routing file not reloaded, the previous configuration stays: %s", exc)
            return False
        self._install(router)
        self.reloads += 1
        logger.info("routing file reloaded")
        return True


def install_reload_on_sighup(reloader: Reloader) -> Callable[[], None]:
    """SIGHUP → `reloader.reload()` on the event loop; returns the undo. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGHUP)

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(reloader.reload)

    signal.signal(signal.SIGHUP, handle)

    def undo() -> None:
        signal.signal(signal.SIGHUP, previous)

    return undo
