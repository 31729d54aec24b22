"""Retrying an upstream call only where it cannot bill a second generation.

A call is retried when the upstream never produced an answer we used: the connection could not be opened,
or it answered 429/5xx (nothing generated, nothing streamed). Once the upstream sends a 2xx status line —
for a stream, as soon as its headers arrive — the answer is final, whatever happens afterwards.

A retry waits the upstream's `retry-after`/`retry-after-ms` when it is short (≤ `max_wait`), else a jittered
exponential backoff; a long `retry-after` is not waited out but passed on to the client, whose own retry loop
is the right place for it. Every request has a retry count and a total time budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from messages_bridge.errors import is_out_of_quota
from messages_bridge.observability import record

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# Failures before the request reached the upstream at all: retrying them cannot duplicate work.
RETRYABLE_ERRORS: tuple[type[httpx.HTTPError], ...] = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, how long to wait each time, and how long a request may spend on retries in all."""

    max_retries: int = 2
    max_wait: float = 2.0
    budget: float = 10.0
    base_delay: float = 0.25

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter in [ceiling/2, ceiling], so many clients do not retry in step."""
        ceiling = min(self.max_wait, self.base_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


NO_RETRIES = RetryPolicy(max_retries=0)
# When a request may try several upstreams, they share one retry budget: set once per request (failover).
REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("retry_deadline", default=None)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asks us to wait: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def answer_delay(policy: RetryPolicy, attempt: int, response: httpx.Response) -> float | None:
    """Seconds to wait before retrying after this answer, or None when the answer goes to the client as is."""
    if response.status_code not in RETRYABLE_STATUSES or attempt >= policy.max_retries:
        return None
    if response.headers.get("x-should-retry", "").lower() == "false":
        return None
    after = retry_after(response.headers)
    if after is None:
        return policy.backoff(attempt)
    return after if after <= policy.max_wait else None


async def _out_of_quota(response: httpx.Response) -> bool:
    """Reads the (small) 429 body, kept on the response for the caller, and looks for an out-of-quota code."""
    try:
        await response.aread()
    except httpx.HTTPError:
        return False
    return is_out_of_quota(response.content)


async def send_with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """`call()` until it gives a final answer; retryable transport errors propagate once the budget is spent.

    The returned response may be a non-2xx one (the caller maps it); a retried response is closed first so its
    connection goes back to the pool.
    """
    deadline = time.monotonic() + policy.budget
    if (shared := REQUEST_DEADLINE.get()) is not None:
        deadline = min(deadline, shared)
    attempt = 0
    while True:
        try:
            response = await call()
        except RETRYABLE_ERRORS:
            delay = policy.backoff(attempt) if attempt < policy.max_retries else None
            if delay is None or time.monotonic() + delay > deadline:
                raise
        else:
            if response.status_code == 429 and await _out_of_quota(response):
                return response  # never retried on the same key: it cannot succeed
            delay = answer_delay(policy, attempt, response)
            if delay is None or time.monotonic() + delay > deadline:
                return response
            await response.aclose()
        record.current().retries += 1
        await asyncio.sleep(delay)
        attempt += 1
