"""Trying a request's targets in order until one answers, before anything reached the client.

A call is passed on to the next key of the same upstream when the key is the problem (401, out of quota, 429),
and to the next target when the upstream is (connect error or timeout before an answer, 500/502/503/504/529).
Client errors are final. The caller's `call` must raise only before the first byte reaches the client: the
stream path opens the upstream (status checked) inside it and relays outside, so nothing is ever retried once
a byte is out, and one request never bills two generations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from messages_bridge.errors import GatewayError, OverloadedError, never_retry
from messages_bridge.observability.metrics import note_attempt, note_benched, note_breaker
from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol.headers import retry_after
from messages_bridge.routing.breaker import STATE_VALUES
from messages_bridge.routing.router import Target, UpstreamRuntime
from messages_bridge.upstream.client import ResponsesClient, UpstreamHTTPError

T = TypeVar("T")
Verdict = Literal["final", "key", "upstream"]
UPSTREAM_DOWN = frozenset({500, 502, 503, 504, 529})


def classify(error: GatewayError) -> tuple[Verdict, str]:
    """Whose fault a failed attempt was: the key's, the upstream's, or nobody's (final, goes to the client)."""
    cause = error.__cause__
    if isinstance(cause, UpstreamHTTPError):
        if cause.status == 401:
            return "key", "rejected"
        if cause.status in (402, 429) and never_retry(cause.body):
            return "key", "out_of_quota"
        if cause.status == 429:
            return "key", "rate_limited"
        if cause.status in UPSTREAM_DOWN:
            return "upstream", f"http_{cause.status}"
        return "final", ""
    if error.before_response:
        return "upstream", error.error_type
    return "final", ""


def _bench(upstream: UpstreamRuntime, index: int, error: GatewayError, reason: str) -> None:
    if not upstream.benching:
        return
    seconds = upstream.bench_seconds
    if reason == "rate_limited":
        cause = error.__cause__
        after = retry_after(cause.headers, now=time.time()) if isinstance(cause, UpstreamHTTPError) else None
        if after is None:
            return  # no date given: the key is not benched, the next key is simply tried
        seconds = after
    upstream.keys.bench(index, seconds, reason)
    note_benched(upstream.name, index, reason)


def _unavailable(targets: tuple[Target, ...]) -> OverloadedError:
    waits = [t.upstream.breaker.retry_in() for t in targets if t.upstream.breaker is not None]
    after = max(1, math.ceil(min(waits))) if waits else 1
    return OverloadedError(
        "No upstream can take this request now (circuits open or keys resting)", headers={"retry-after": str(after)}
    )


async def _attempt(target: Target, index: int, call: Callable[[Target, ResponsesClient], Awaitable[T]]) -> T:
    """One call; the breaker hears the verdict (a client error proves the upstream is up)."""
    upstream = target.upstream
    breaker = upstream.breaker
    try:
        result = await call(target, upstream.clients[index])
    except GatewayError as exc:
        verdict, _ = classify(exc)
        note_attempt(upstream.name, verdict)
        if breaker is not None:
            if verdict == "upstream":
                breaker.failure()
            else:
                breaker.success()  # the upstream answered: it is up, whatever it said
            note_breaker(upstream.name, STATE_VALUES[breaker.state])
        raise
    except BaseException:
        if breaker is not None:
            breaker.release()
        raise
    note_attempt(upstream.name, "ok")
    if breaker is not None:
        breaker.success()
        note_breaker(upstream.name, STATE_VALUES[breaker.state])
    return result


async def with_failover(
    targets: tuple[Target, ...],
    call: Callable[[Target, ResponsesClient], Awaitable[T]],
    *,
    conversation: str | None,
    budget: float,
    facts: UpstreamFacts,
) -> T:
    """`call` on the first target (and key) that answers; the last failure is raised when none does.

    Moving on adds no wait and tries each target's keys at most once; the retries (and their waits) of all the
    attempts share the request's one retry budget. Which upstream, target and key answered (or failed last), and
    how many attempts were given up, go on `facts`.
    """
    facts.retry_deadline = time.monotonic() + budget
    return await _first_answer(targets, call, conversation, facts)


async def _first_answer(
    targets: tuple[Target, ...],
    call: Callable[[Target, ResponsesClient], Awaitable[T]],
    conversation: str | None,
    facts: UpstreamFacts,
) -> T:
    last: GatewayError | None = None
    for target in targets:
        upstream = target.upstream
        keys = upstream.keys.order(conversation)
        if not keys or (upstream.breaker is not None and not upstream.breaker.allow()):
            continue
        for index in keys:
            if last is not None:
                facts.fallbacks += 1
            facts.upstream, facts.target_position, facts.key_index = upstream.name, target.position, index
            try:
                return await _attempt(target, index, call)
            except GatewayError as exc:
                verdict, reason = classify(exc)
                if verdict == "final":
                    raise
                last = exc
                if verdict == "upstream":
                    break
                _bench(upstream, index, exc, reason)
    if last is not None:
        raise last
    return await _resting_keys_only(targets, call, facts)


async def _resting_keys_only(
    targets: tuple[Target, ...], call: Callable[[Target, ResponsesClient], Awaitable[T]], facts: UpstreamFacts
) -> T:
    """Every reachable target's keys rest: try the key that rests least, so the client gets the upstream's own
    answer (a rejected key's 401, an exhausted quota) rather than a vague 529."""
    for target in targets:
        upstream = target.upstream
        if upstream.breaker is not None and not upstream.breaker.allow():
            continue
        index = upstream.keys.soonest()
        facts.upstream, facts.target_position, facts.key_index = upstream.name, target.position, index
        return await _attempt(target, index, call)
    raise _unavailable(targets)
