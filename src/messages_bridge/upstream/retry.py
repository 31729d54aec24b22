"""Retrying an upstream call only where it cannot bill a second generation.

A call is retried when the upstream never produced an answer we used: the connection could not be opened,
or it answered 429/5xx (nothing generated, nothing streamed). Once the upstream sends a 2xx status line —
for a stream, as soon as its headers arrive — the answer is final, whatever happens afterwards.

An answer whose error code says no retry can change it (`429 insufficient_quota`: the account is out of credit)
is final too: its body is read (error bodies are small) before deciding.

A retry waits the upstream's `retry-after`/`retry-after-ms` when it is short (≤ `max_wait`), else a jittered
exponential backoff; a long `retry-after` is not waited out but passed on to the client, whose own retry loop
is the right place for it. Every request has a retry count and a total time budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from messages_bridge.errors import GatewayError, never_retry
from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol.headers import retry_after
from messages_bridge.upstream.body import error_body

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


def answer_delay(policy: RetryPolicy, attempt: int, response: httpx.Response) -> float | None:
    """Seconds to wait before retrying after this answer, or None when the answer goes to the client as is."""
    if response.status_code not in RETRYABLE_STATUSES or attempt >= policy.max_retries:
        return None
    if response.headers.get("x-should-retry", "").lower() == "false":
        return None
    after = retry_after(response.headers, now=time.time())
    if after is None:
        return policy.backoff(attempt)
    return after if after <= policy.max_wait else None


async def _code_forbids_retry(response: httpx.Response) -> bool:
    """Whether the answer's error code says a retry cannot help; reads the body, which the caller then reuses.

    A body that fails to arrive is a failure after the request was sent, and those are never retried.
    """
    try:
        body = await error_body(response)  # bounded and decoded: an error body can be a compression bomb too
    except GatewayError:
        await response.aclose()
        raise
    return never_retry(body)


async def send_with_retries(
    policy: RetryPolicy, call: Callable[[], Awaitable[httpx.Response]], facts: UpstreamFacts | None = None
) -> httpx.Response:
    """`call()` until it gives a final answer; retryable transport errors propagate once the budget is spent.

    The returned response may be a non-2xx one (the caller maps it); a retried response is closed first so its
    connection goes back to the pool. Each retry is counted on `facts` (None: a call outside a request), and
    stops at its `retry_deadline` too (the budget a request's attempts share when failover tries several).
    """
    deadline = time.monotonic() + policy.budget
    if facts is not None and facts.retry_deadline is not None:
        deadline = min(deadline, facts.retry_deadline)
    attempt = 0
    while True:
        try:
            response = await call()
        except RETRYABLE_ERRORS:
            delay = policy.backoff(attempt) if attempt < policy.max_retries else None
            if delay is None or time.monotonic() + delay > deadline:
                raise
        else:
            delay = answer_delay(policy, attempt, response)
            if delay is not None and await _code_forbids_retry(response):
                delay = None
            if delay is None or time.monotonic() + delay > deadline:
                return response
            await response.aclose()
        if facts is not None:
            facts.retries += 1
        await asyncio.sleep(delay)
        attempt += 1
