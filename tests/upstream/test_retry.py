"""The retry policy on its own: which answers are retried, how long it waits, and its budget."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.upstream.retry import RetryPolicy, answer_delay, send_with_retries

FAST = RetryPolicy(max_retries=2, max_wait=0.2, budget=5.0, base_delay=0.01)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_after_is_the_one_shared_parser() -> None:
    """The retry policy and the client-facing header read `retry-after` the same way (tests/protocol/test_headers)."""
    assert answer_delay(FAST, 0, answer(429, **{"retry-after": "0.1"})) == 0.1
    assert answer_delay(FAST, 0, answer(429, **{"retry-after": "-4"})) is not None  # not understood: backoff
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert answer_delay(FAST, 0, answer(429, **{"retry-after": when})) is None  # long: passed on to the client


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_retryable_statuses_wait_a_jittered_backoff(status: int) -> None:
    delays = {answer_delay(FAST, 1, answer(status)) for _ in range(50)}
    assert all(d is not None and 0.01 <= d <= 0.02 for d in delays)
    assert len(delays) > 1  # jittered


@pytest.mark.parametrize("status", [200, 201, 400, 401, 403, 404, 408, 409, 413, 422, 501])
def test_other_statuses_are_final(status: int) -> None:
    assert answer_delay(FAST, 0, answer(status)) is None


def test_short_retry_after_is_waited_and_long_one_passed_on() -> None:
    assert answer_delay(FAST, 0, answer(429, **{"retry-after-ms": "150"})) == 0.15
    assert answer_delay(FAST, 0, answer(429, **{"retry-after": "1"})) is None
    assert answer_delay(FAST, 0, answer(503, **{"x-should-retry": "false"})) is None
    assert answer_delay(FAST, 2, answer(503)) is None  # retries used up


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, max_wait=1.0, base_delay=0.1)
    assert max(policy.backoff(0) for _ in range(20)) <= 0.1
    assert min(policy.backoff(2) for _ in range(20)) >= 0.2
    assert max(policy.backoff(9) for _ in range(20)) <= 1.0


class Calls:
    """A scripted `call()`: each item is a status to answer or an exception to raise."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.count = 0

    async def __call__(self) -> httpx.Response:
        self.count += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return answer(outcome)


async def test_connection_errors_are_retried_then_raised() -> None:
    calls = Calls(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), 200)
    assert (await send_with_retries(FAST, calls)).status_code == 200
    assert calls.count == 3
    calls = Calls(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(httpx.ConnectError):
        await send_with_retries(FAST, calls)
    assert calls.count == 3


async def test_errors_after_the_request_was_sent_are_never_retried() -> None:
    for exc in (httpx.ReadTimeout("t"), httpx.RemoteProtocolError("cut"), httpx.ReadError("reset")):
        calls = Calls(exc, 200)
        with pytest.raises(type(exc)):
            await send_with_retries(FAST, calls)
        assert calls.count == 1


async def test_success_and_final_failures_are_returned_as_they_are() -> None:
    calls = Calls(503, 529, 200)
    assert (await send_with_retries(FAST, calls)).status_code == 200
    calls = Calls(503, 503, 503, 200)
    assert (await send_with_retries(FAST, calls)).status_code == 503
    assert calls.count == 3


async def test_the_time_budget_stops_retrying() -> None:
    policy = RetryPolicy(max_retries=5, max_wait=0.2, budget=0.25, base_delay=0.2)
    calls = Calls(*[500] * 6)
    started = time.monotonic()
    assert (await send_with_retries(policy, calls)).status_code == 500
    assert time.monotonic() - started < 0.5
    assert 1 <= calls.count <= 3


async def test_retries_are_counted_in_the_call_facts() -> None:
    facts = UpstreamFacts()
    await send_with_retries(FAST, Calls(429, 502, 200), facts)
    assert facts.retries == 2
