"""What uvicorn is started with: the guarded connection protocol, its limits, and the process's open-file limit."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from messages_bridge.config import Settings
from messages_bridge.serving.protocol import ConnectionLimits, GuardedHttpProtocol

logger = logging.getLogger("messages_bridge.serving")
RESERVED_FILES = 64  # descriptors kept for logs, the metrics directory, DNS, the listening socket…


def raise_open_file_limit() -> int | None:
    """Raise the soft `RLIMIT_NOFILE` to the hard limit (each connection is a descriptor); the resulting soft limit.

    None where the platform has no such limit (Windows).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return None if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def connection_limits(settings: Settings, open_files: int | None) -> ConnectionLimits:
    """The limits from the settings; client connections capped to what the descriptors allow.

    Each client connection can hold an upstream connection too, so clients get at most half the descriptors.
    """
    cap = settings.max_client_connections
    if open_files is not None and cap > (open_files - RESERVED_FILES) // 2:
        fitted = max(1, (open_files - RESERVED_FILES) // 2)
        logger.warning("open-file limit %d allows %d client connections, not %d", open_files, fitted, cap)
        cap = fitted
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        min_body_rate=settings.min_body_rate,
        max_connections=cap,
    )


def protocol_factory(limits: ConnectionLimits) -> Callable[..., asyncio.Protocol]:
    """What uvicorn builds each connection with (a partial pickles, so it reaches worker processes too)."""
    return functools.partial(GuardedHttpProtocol, limits=limits)


def uvicorn_options(settings: Settings, *, open_files: int | None) -> dict[str, Any]:
    """The keyword arguments for `uvicorn.run`/`uvicorn.Config` that enforce the client-side limits."""
    return {
        "http": protocol_factory(connection_limits(settings, open_files)),
        "ws": "none",  # no WebSocket routes: an upgrade request is an ordinary request
    }
