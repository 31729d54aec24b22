"""Choosing the thread store from the settings, and refusing configurations that would lose threads silently."""

from __future__ import annotations

import logging

from messages_bridge.config import Settings
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.service import ThreadService
from messages_bridge.threads.store import LEASE_SECONDS, Limits, ThreadStore

logger = logging.getLogger("messages_bridge.threads")


def limits(settings: Settings) -> Limits:
    return Limits(
        idle=settings.threads_idle_seconds,
        lease=LEASE_SECONDS,
        max_thread_bytes=settings.threads_max_thread_bytes,
        max_total_bytes=settings.threads_max_bytes,
    )


def shared(settings: Settings) -> bool:
    """Threads go to Redis: a URL and a key are both set."""
    return settings.redis_url is not None and settings.threads_key is not None


def threads_problem(settings: Settings) -> str | None:
    """A reason to refuse to start, or None.

    Several workers each holding threads in their own memory would answer a continue that lands on another worker
    with a spurious `thread_not_found`: that configuration is refused, not pinned.
    """
    if settings.threads and shared(settings):
        from messages_bridge.threads.crypto import ThreadsKeyError, parse_keys  # loads `cryptography`: only when used

        assert settings.threads_key is not None
        try:
            parse_keys(settings.threads_key.get_secret_value())
        except ThreadsKeyError as exc:
            return str(exc)
        return None
    if not settings.threads or settings.workers == 1:
        return None
    missing = "BRIDGE_THREADS_KEY" if settings.redis_url else "BRIDGE_REDIS_URL and BRIDGE_THREADS_KEY"
    return (
        f"refusing to run {settings.workers} workers with message threads in per-process memory: set {missing} "
        "(threads shared through Redis, encrypted), or BRIDGE_THREADS=off, or BRIDGE_WORKERS=1"
    )


def build_store(settings: Settings) -> ThreadStore:
    if shared(settings):
        from messages_bridge.threads.redis import RedisThreadStore

        assert settings.redis_url is not None and settings.threads_key is not None
        return RedisThreadStore.from_settings(
            settings.redis_url, settings.threads_key.get_secret_value(), limits(settings)
        )
    if settings.redis_url is not None and settings.threads:
        logger.warning(
            "BRIDGE_REDIS_URL is set without BRIDGE_THREADS_KEY: message threads stay in this process's memory"
        )
    return MemoryThreadStore(limits(settings))


def thread_service(settings: Settings) -> ThreadService:
    return ThreadService(build_store(settings) if settings.threads else MemoryThreadStore(), enabled=settings.threads)
