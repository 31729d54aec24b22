"""Limit and budget counters behind one interface: in process memory (embedded) or in Redis (shared).

One admission is one atomic step (in Redis one Lua script in one round trip, the request path's only one):
requests per minute in a moving window (exact: N requests in any 60 s), tokens per minute in a sliding window
counter (the previous minute weighted by the part of it still inside the window), concurrent requests as leases
(expired after `LEASE_SECONDS` should a process die holding them), and budget spend plus in-flight reservations
per period. Money is counted in integer nano-dollars so "spent == budget" is exact. Settling never waits: memory
applies it at once, Redis queues it for a background pipeline (or the process's next admission, whichever comes
first).

The `limits` library implements the same windows, but one check there is one round trip per limit and it has
no concurrency leases or reservations; a single script keeps Redis at one round trip per admission.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

WINDOW = 60.0
LEASE_SECONDS = 900.0
RESERVATION_TTL = 3600


@dataclass(slots=True)
class Ask:
    """One admission: the key's limits (None = unlimited) and what this request would use."""

    key: str
    lease: str
    rpm: int | None
    tpm: int | None
    tokens: int
    concurrency: int | None
    budget: int | None  # nano-dollars per period
    period: str
    period_ttl: int
    reserve: int  # nano-dollars held until the request settles


@dataclass(slots=True)
class Verdict:
    refused: str | None  # "budget", "requests", "tokens" or "concurrency" (checked in this order); None = admitted
    requests_used: int  # in the last minute, before this request
    tokens_used: int
    spent: int  # nano-dollars this period, reservations included
    retry_after: float  # seconds


@dataclass(slots=True)
class Settlement:
    key: str
    lease: str
    tpm: bool
    concurrency: bool
    tokens_delta: int  # real usage minus the estimate debited at admission
    budget: bool
    period: str
    period_ttl: int
    reserved: int
    cost: int
    on_spent: Callable[[int], None] | None = None  # told the period's spend once the debit is made (budget keys)


class CountersUnavailable(Exception):
    """The shared counter store could not be reached."""


class Counters(Protocol):
    async def admit(self, ask: Ask) -> Verdict: ...

    def settle(self, s: Settlement) -> None:
        """Apply a finished request without waiting (Redis: queued, written in the background); `s.on_spent` hears
        the period's spend (nano-dollars) afterwards."""
        ...

    async def flush(self) -> None:
        """Write what `settle` queued (shutdown, tests)."""
        ...

    async def seed_spend(self, key: str, period: str, spent: int, ttl: int) -> None:
        """Set the period's spend unless already known (after a restart, from the ledger)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    tokens: dict[int, int] = field(default_factory=dict)  # minute index -> tokens
    leases: dict[str, float] = field(default_factory=dict)  # lease -> expiry


def _sliding(tokens: dict[int, int], now: float) -> int:
    bucket = int(now // WINDOW)
    frac = (now - bucket * WINDOW) / WINDOW
    return max(0, math.floor(tokens.get(bucket - 1, 0) * (1 - frac) + tokens.get(bucket, 0)))


class MemoryCounters:
    """Counters of this process (one worker); mutated on the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._spent: dict[tuple[str, str], int] = {}
        self._reserved: dict[tuple[str, str], int] = {}

    async def admit(self, ask: Ask) -> Verdict:
        now = self._clock()
        state = self._keys.get(ask.key)
        if state is None:
            state = self._keys[ask.key] = _KeyState()
        requests, tokens, leases = state.requests, state.tokens, state.leases
        bucket = int(now // WINDOW)
        if ask.rpm is not None:
            while requests and requests[0] <= now - WINDOW:
                requests.popleft()
        if ask.tpm is not None and len(tokens) > 2:
            for old in [b for b in tokens if b < bucket - 1]:
                del tokens[old]
        if ask.concurrency is not None and leases:
            for lease in [k for k, exp in leases.items() if exp <= now]:
                del leases[lease]
        tokens_used = _sliding(tokens, now) if ask.tpm is not None else 0
        period = (ask.key, ask.period)
        spent = self._spent.get(period, 0) + self._reserved.get(period, 0) if ask.budget is not None else 0
        refused, retry = None, 0.0
        if ask.budget is not None and spent >= ask.budget:
            refused = "budget"
        elif ask.rpm is not None and len(requests) >= ask.rpm:
            refused, retry = "requests", requests[0] + WINDOW - now
        elif ask.tpm is not None and tokens_used + ask.tokens > ask.tpm:
            refused, retry = "tokens", (bucket + 1) * WINDOW - now
        elif ask.concurrency is not None and len(leases) >= ask.concurrency:
            refused, retry = "concurrency", 1.0
        verdict = Verdict(refused, len(requests), tokens_used, spent, retry)
        if refused is None:
            if ask.rpm is not None:
                requests.append(now)
            if ask.tpm is not None:
                state.tokens[bucket] = state.tokens.get(bucket, 0) + ask.tokens
            if ask.concurrency is not None:
                state.leases[ask.lease] = now + LEASE_SECONDS
            if ask.budget is not None:
                self._reserved[period] = self._reserved.get(period, 0) + ask.reserve
        return verdict

    def settle(self, s: Settlement) -> None:
        state = self._keys.setdefault(s.key, _KeyState())
        if s.tpm and s.tokens_delta:
            bucket = int(self._clock() // WINDOW)
            state.tokens[bucket] = state.tokens.get(bucket, 0) + s.tokens_delta
        if s.concurrency:
            state.leases.pop(s.lease, None)
        if s.budget:
            period = (s.key, s.period)
            self._reserved[period] = max(0, self._reserved.get(period, 0) - s.reserved)
            spent = self._spent[period] = self._spent.get(period, 0) + s.cost
            if s.on_spent is not None:
                s.on_spent(spent)

    async def flush(self) -> None:
        return None

    async def seed_spend(self, key: str, period: str, spent: int, ttl: int) -> None:
        self._spent.setdefault((key, period), spent)

    async def aclose(self) -> None:
        return None
