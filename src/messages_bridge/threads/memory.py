"""The default store: threads in this process's memory, never written to disk.

Bounded in bytes per thread and in total; the least recently used thread is evicted first (a later continue of
it gets `thread_not_found`, which the SDKs answer by replaying the conversation). Expired threads are dropped by a
sweep every `SWEEP_SECONDS`, so none outlives its expiry by more than that. Every operation is synchronous inside
one event loop, so each is atomic without a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from messages_bridge.threads.store import Limits, Refusal, StoredThread

SWEEP_SECONDS = 30.0
MAX_TOMBSTONES = 100_000  # a tombstone is an id and a time: ~200 bytes, so this bounds them at ~20 MB

Key = tuple[str, str]


@dataclass(slots=True)
class _Head:
    thread: StoredThread
    size: int
    expires: float
    lease: str | None = None
    lease_until: float = 0.0

    def leased(self, now: float) -> bool:
        return self.lease is not None and now < self.lease_until

    def alive(self, now: float) -> bool:
        return now < self.expires or self.leased(now)


class MemoryThreadStore:
    """Threads keyed by (tenant, head id), in least-recently-used order."""

    def __init__(self, limits: Limits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._heads: OrderedDict[Key, _Head] = OrderedDict()
        self._tombs: OrderedDict[Key, float] = OrderedDict()
        self._bytes = 0
        self._sweeper: asyncio.Task[None] | None = None
        self.evicted = 0

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._heads)

    async def acquire(self, tenant: str, message_id: str, lease: str) -> StoredThread | Refusal:
        now = self._clock()
        key = (tenant, message_id)
        head = self._live(key, now)
        if head is None:
            tomb = self._tombs.get(key)
            return Refusal.ALREADY_CONTINUED if tomb is not None and now < tomb else Refusal.NOT_FOUND
        if head.leased(now):
            return Refusal.IN_FLIGHT
        head.lease, head.lease_until = lease, now + self.limits.lease
        self._heads.move_to_end(key)
        return head.thread

    async def release(self, tenant: str, message_id: str, lease: str) -> None:
        now = self._clock()
        head = self._live((tenant, message_id), now)
        if head is not None and head.lease == lease:
            head.lease = None
            head.expires = max(head.expires, now + self.limits.idle)  # a failed turn still counts as use

    async def commit(self, thread: StoredThread, *, previous: str | None, lease: str | None) -> bool:
        now = self._clock()
        tenant = thread.tenant
        if previous is not None:
            old = self._live((tenant, previous), now)
            if old is None or old.lease != lease or not old.leased(now):
                return False
            self._drop((tenant, previous))
            self._tomb((tenant, previous), now)
        size = thread.size()
        if size > self.limits.max_thread_bytes:
            return False
        key = (tenant, thread.head)
        if key in self._heads:  # ids are minted at random: a clash means a bug, never overwrite silently
            return False
        self._heads[key] = _Head(thread, size, now + self.limits.idle)
        self._bytes += size
        self._evict()
        self._start_sweeper()
        return key in self._heads

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._heads.clear()
        self._tombs.clear()
        self._bytes = 0

    def sweep(self) -> None:
        """Drop every expired thread and tombstone."""
        now = self._clock()
        for key in [k for k, head in self._heads.items() if not head.alive(now)]:
            self._drop(key)
        for key in [k for k, until in self._tombs.items() if now >= until]:
            del self._tombs[key]

    # ---- internals --------------------------------------------------------------------------------------------------

    def _live(self, key: Key, now: float) -> _Head | None:
        head = self._heads.get(key)
        if head is not None and not head.alive(now):
            self._drop(key)
            return None
        return head

    def _drop(self, key: Key) -> None:
        head = self._heads.pop(key, None)
        if head is not None:
            self._bytes -= head.size

    def _tomb(self, key: Key, now: float) -> None:
        self._tombs[key] = now + self.limits.idle + self.limits.lease
        while len(self._tombs) > MAX_TOMBSTONES:
            self._tombs.popitem(last=False)

    def _evict(self) -> None:
        while self._bytes > self.limits.max_total_bytes and self._heads:
            _, head = self._heads.popitem(last=False)
            self._bytes -= head.size
            self.evicted += 1

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()
