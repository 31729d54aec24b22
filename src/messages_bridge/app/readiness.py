"""`/readyz`'s upstream probe, cached: a probe flood (load balancers, a misconfigured monitor) is not an upstream flood.

The answer — reachable or not — is kept for `READY_CACHE_SECONDS`; callers arriving while a probe is in flight
wait for that probe instead of starting their own, so the upstream sees at most one probe per period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

READY_CACHE_SECONDS = 5.0


class ReadinessProbe:
    """`ready()`: the cached result of `probe()`, refreshed once it is older than `ttl` seconds."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        *,
        ttl: float = READY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._result = False
        self._checked: float | None = None

    def _fresh(self) -> bool:
        return self._checked is not None and self._clock() - self._checked < self._ttl

    async def ready(self) -> bool:
        if self._fresh():
            return self._result
        async with self._lock:
            if not self._fresh():  # another caller may have probed while this one waited for the lock
                self._result = await self._probe()
                self._checked = self._clock()
        return self._result
