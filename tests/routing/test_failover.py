"""Failover before the first byte, for each fault kind, streaming and not; client errors and anything after the
first byte are never failed over; the circuit breaker opens, skips, probes and recovers; /readyz reports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.observability.helpers import capture_logs
from tests.reliability.faults import ok_response
from tests.routing.conftest import HELLO, two_upstreams
from tests.servers import free_port
from tests.streamkit import parse_sse

Make = Callable[..., Any]
__all__ = ["capture_logs"]


def failure(status: int, code: str | None = None, **headers: str) -> Reply:
    return Reply(status=status, json_body={"error": {"message": f"failed {status}", "code": code}}, headers=headers)


async def post(gateway: Any, stream: bool, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(status, JSON error or the folded event names) of one request."""
    reply = await gateway.post((body or HELLO) | {"stream": stream})
    if reply.status_code != 200:
        return reply.status_code, reply.json()
    return 200, [name for name, _ in parse_sse(reply.content)] if stream else reply.json()


FAULTS = {
    "429": [failure(429, "rate_limit_exceeded")],
    "500": [failure(500)],
    "502": [failure(502)],
    "503": [failure(503)],
    "504": [failure(504)],
    "529": [failure(529)],
    "out_of_quota": [failure(429, "insufficient_quota")],
    "timeout": [Reply(hang=3.0, json_body={})],
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_fault_before_the_first_byte_fails_over(
    routed: Make, fakes: dict[str, FakeUpstream], fault: str, stream: bool
) -> None:
    config = two_upstreams(fakes).replace("api_keys:", "timeouts: {read: 0.5}, api_keys:", 1)
    gateway = await routed(config)
    fakes["a"].script.push(*FAULTS[fault])
    status, body = await post(gateway, stream)
    assert status == 200, body
    assert "message_stop" in body if stream else body["type"] == "message"
    assert len(fakes["a"].requests) == 1
    assert len(fakes["b"].requests) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_connect_error_fails_over(routed: Make, fakes: dict[str, FakeUpstream], stream: bool) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = f"""
upstreams:
  down: {{base_url: "{dead}"}}
  b: {{base_url: "{fakes["b"].base_url}"}}
routes:
  - {{match: "*", targets: [down/gpt-5, b/gpt-5]}}
"""
    gateway = await routed(config)
    status, _ = await post(gateway, stream)
    assert status == 200
    assert len(fakes["b"].requests) == 1
    record = gateway.state.router.upstreams["down"].breaker
    assert record.state == "closed"  # one failure does not open the circuit


async def test_429_fails_over_only_after_the_short_retries(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(two_upstreams(fakes), max_retries=2, max_retry_wait=0.05)
    fakes["a"].script.push(*[failure(429, "rate_limit_exceeded", **{"retry-after-ms": "10"})] * 3)
    assert (await post(gateway, False))[0] == 200
    assert len(fakes["a"].requests) == 3  # the first try and two retries, then the next target
    assert len(fakes["b"].requests) == 1


async def test_out_of_quota_is_never_retried_on_the_same_key(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(two_upstreams(fakes), max_retries=2, max_retry_wait=0.05)
    fakes["a"].script.push(*[failure(429, "insufficient_quota")] * 3)
    assert (await post(gateway, False))[0] == 200
    assert len(fakes["a"].requests) == 1
    assert gateway.state.router.upstreams["a"].keys.benched() == [0]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (413, "request_too_large"), (403, "permission_error")],
)
async def test_client_errors_are_not_failed_over(
    routed: Make, fakes: dict[str, FakeUpstream], status: int, kind: str, stream: bool
) -> None:
    gateway = await routed(two_upstreams(fakes))
    fakes["a"].script.push(failure(status, "invalid_value"))
    got, body = await post(gateway, stream)
    assert got == status and body["error"]["type"] == kind
    assert fakes["b"].requests == []


async def test_when_every_target_fails_the_last_error_is_reported(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(two_upstreams(fakes))
    fakes["a"].script.push(failure(503))
    fakes["b"].script.push(failure(500))
    status, body = await post(gateway, False)
    assert status == 500 and body["error"]["type"] == "api_error"


async def test_nothing_is_retried_after_the_first_byte(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    """The stream breaks after its first events reached the client: an error event ends it, no second upstream."""
    gateway = await routed(two_upstreams(fakes))
    data = encode_sse(events_for(ok_response("this never finishes"), chunk=4))
    fakes["a"].script.push(Reply(chunks=[data[: len(data) // 2]]))
    status, names = await post(gateway, True)
    assert status == 200
    assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names
    assert fakes["b"].requests == []


async def test_a_failed_generation_after_the_status_line_is_not_retried(
    routed: Make, fakes: dict[str, FakeUpstream]
) -> None:
    """A non-streaming 200 whose body is cut: the upstream may have generated (and billed) it, so no failover."""
    gateway = await routed(two_upstreams(fakes))
    fakes["a"].script.push(Reply(status=200, chunks=[b'{"id": "resp_x", "object": "resp'], headers={}))
    status, _ = await post(gateway, False)
    assert status >= 500
    assert fakes["b"].requests == []


async def test_the_breaker_opens_skips_probes_and_recovers(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    extra = two_upstreams(fakes).replace("api_keys:", "breaker: {failures: 2, cooldown: 0.3}, api_keys:", 1)
    gateway = await routed(extra)
    breaker = gateway.state.router.upstreams["a"].breaker
    fakes["a"].script.push(failure(503), failure(503))
    for _ in range(2):
        assert (await post(gateway, False))[0] == 200
    assert breaker.state == "open" and len(fakes["a"].requests) == 2
    ready = await gateway.http.get("/readyz")
    assert ready.status_code == 200  # every route still has a target (b) that can serve
    assert ready.json()["upstreams"]["a"]["breaker"] == "open"
    assert ready.json()["upstreams"]["b"]["breaker"] == "closed"
    for _ in range(3):  # skipped while open: straight to b
        assert (await post(gateway, True))[0] == 200
    assert len(fakes["a"].requests) == 2 and len(fakes["b"].requests) == 5
    await _sleep(0.35)
    fakes["a"].script.push(failure(503))  # the probe fails: open again
    assert (await post(gateway, False))[0] == 200
    assert breaker.state == "open" and len(fakes["a"].requests) == 3
    await _sleep(0.35)
    assert (await post(gateway, False))[0] == 200  # the probe succeeds: closed
    assert breaker.state == "closed" and len(fakes["a"].requests) == 4
    assert (await post(gateway, False))[0] == 200
    assert len(fakes["a"].requests) == 5


async def test_readyz_is_unready_when_a_route_has_no_target_left(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = f"""
upstreams:
  down: {{base_url: "{dead}", breaker: {{failures: 1, cooldown: 60}}}}
  b: {{base_url: "{fakes["b"].base_url}"}}
routes:
  - {{match: "claude-haiku-*", targets: [down/gpt-5-mini]}}
  - {{match: "*", targets: [b/gpt-5]}}
"""
    gateway = await routed(config)
    ready = await gateway.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["upstreams"]["down"]["reachable"] is False
    assert ready.json()["upstreams"]["b"] == {"breaker": "closed", "reachable": True, "keys": 1, "keys_benched": 0}
    reply = await gateway.post(HELLO | {"model": "claude-haiku-4-5"})
    assert reply.status_code == 529 and reply.json()["error"]["type"] == "overloaded_error"
    skipped = await gateway.post(HELLO | {"model": "claude-haiku-4-5"})  # the circuit is open: not even tried
    assert skipped.status_code == 529 and 1 <= int(skipped.headers["retry-after"]) <= 60


async def test_the_access_record_and_metrics_name_upstream_position_fallbacks_and_key(
    routed: Make, fakes: dict[str, FakeUpstream], capture_logs: Any
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    gateway = await routed(two_upstreams(fakes))
    logs = capture_logs(gateway.state.settings)
    fakes["a"].script.push(failure(502))
    assert (await gateway.post()).status_code == 200
    assert (await gateway.post()).status_code == 200
    failed_over, direct = logs.access()[-2:]
    assert (failed_over["upstream"], failed_over["target_position"], failed_over["fallbacks"]) == ("b", 1, 1)
    assert failed_over["key_index"] == 0 and failed_over["upstream_error_type"] == "api_error"
    assert (direct["upstream"], direct["target_position"], direct["fallbacks"]) == ("a", 0, 0)
    assert "sk-a-0000" not in logs.text and "sk-b-0000" not in logs.text
    scraped = (await gateway.http.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    attempts = "messages_bridge_upstream_attempts_total"
    assert samples[(attempts, (("outcome", "upstream"), ("upstream", "a")))] >= 1
    assert samples[(attempts, (("outcome", "ok"), ("upstream", "b")))] >= 1
    assert samples[("messages_bridge_upstream_circuit_state", (("upstream", "a"),))] == 0


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_failover_adds_no_wait_and_retries_share_one_budget(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    """A timeout longer than the whole retry budget still moves on (moving on costs no wait), but the next
    target's retry waits come out of the budget the first one already spent: b answers its 503 as final."""
    config = two_upstreams(fakes).replace("api_keys:", "timeouts: {read: 0.6}, api_keys:", 1)
    gateway = await routed(config, max_retries=2, max_retry_wait=0.3, retry_budget=0.5)
    fakes["a"].script.push(Reply(hang=2.0, json_body={}))
    assert (await post(gateway, False))[0] == 200
    assert len(fakes["b"].requests) == 1
    fakes["a"].script.push(Reply(hang=2.0, json_body={}))
    fakes["b"].script.push(failure(503, **{"retry-after-ms": "100"}))
    status, body = await post(gateway, False)
    assert status == 529 and body["error"]["type"] == "overloaded_error"
    assert len(fakes["b"].requests) == 2  # no retry: the shared budget was spent waiting for a
