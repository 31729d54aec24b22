"""Per-key limits and budgets: 429 with the key's own rate-limit headers, 402 naming the budget and its reset."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from messages_bridge.demo.server import Reply
from messages_bridge.errors import OverloadedError
from messages_bridge.observability.record import RequestRecord
from messages_bridge.team.budget import StaticPriceTable
from messages_bridge.team.counters import Ask, CountersUnavailable, Settlement, Verdict
from messages_bridge.team.identity import Identity
from messages_bridge.team.keys import Limits
from messages_bridge.team.limits import Limiter
from tests.conftest import FakeUpstream
from tests.observability.helpers import canary_reply, scrape
from tests.team.conftest import BODY, TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]
RL = "anthropic-ratelimit-"


async def _keyed(open_team: Open, **limits: Any) -> tuple[TeamGateway, str]:
    gw = await open_team()
    secret = gw.team.store.create("alice", Limits(**limits))
    await gw.team.keyring.reload()
    return gw, secret


async def test_requests_per_minute(open_team: Open) -> None:
    gw, secret = await _keyed(open_team, rpm=3)
    answers = [await gw.post(secret) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers[RL + "requests-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    limited = answers[3]
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert "3 requests per minute" in limited.json()["error"]["message"]
    assert limited.headers[RL + "requests-limit"] == "3"
    assert limited.headers[RL + "requests-remaining"] == "0"
    assert limited.headers[RL + "requests-reset"].endswith("Z")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    other = gw.team.store.create("bob", Limits(rpm=3))
    await gw.team.keyring.reload()
    assert (await gw.post(other)).status_code == 200, "limits are per key"


async def test_tokens_per_minute_checks_the_estimate_and_debits_the_real_usage(
    open_team: Open, upstream: FakeUpstream
) -> None:
    gw, secret = await _keyed(open_team, tpm=150)
    upstream.script.push(Reply(json_body=canary_reply()))  # 150 tokens in all
    first = await gw.post(secret)
    assert first.status_code == 200 and first.headers[RL + "tokens-limit"] == "150"
    assert int(first.headers[RL + "tokens-remaining"]) > 100, "only the small estimate was debited before the call"
    second = await gw.post(secret)
    assert second.status_code == 429, "the real usage (150) was debited after the first call"
    assert second.headers[RL + "tokens-limit"] == "150"
    assert second.headers[RL + "tokens-remaining"] == "0"
    assert "tokens per minute" in second.json()["error"]["message"]
    huge = {**BODY, "messages": [{"role": "user", "content": "word " * 4000}]}
    key = gw.team.store.create("small", Limits(tpm=100))
    await gw.team.keyring.reload()
    too_big = await gw.post(key, huge)
    assert too_big.status_code == 429 and too_big.headers["x-should-retry"] == "false"


async def test_concurrent_requests(open_team: Open, upstream: FakeUpstream) -> None:
    gw, secret = await _keyed(open_team, max_concurrency=1)
    release = asyncio.Event()  # the first request holds its lease until the second was refused
    upstream.script.push(Reply(json_body=canary_reply(), hang=30.0, until=release))
    slow = asyncio.create_task(gw.post(secret))
    for _ in range(200):
        if upstream.script.received:
            break
        await asyncio.sleep(0.01)
    busy = await gw.post(secret)
    upstream.release(release)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert "concurrent" in busy.json()["error"]["message"]
    assert (await slow).status_code == 200
    assert (await gw.post(secret)).status_code == 200, "the lease is released when a request ends"


async def test_budget_refuses_with_402_naming_the_budget_and_its_reset_and_warns_at_80_percent(
    open_team: Open, upstream: FakeUpstream
) -> None:
    gw, secret = await _keyed(open_team, budget_usd=0.001, budget_period="month")
    before = scrape((await gw.http.get("/metrics")).text)
    # canary_reply: 100 uncached × $1.25 + 20 cached × $0.125 + 30 output × $10 per million = $0.0004275
    upstream.script.push(*(Reply(json_body=canary_reply()) for _ in range(3)))
    assert [(await gw.post(secret)).status_code for _ in range(3)] == [200, 200, 200]
    refused = await gw.post(secret)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["type"] == "billing_error"
    assert "monthly budget of $0.001" in error["message"] and "resets at" in error["message"]
    assert error["message"].split("resets at ")[1].endswith("-01T00:00:00Z")
    after = scrape((await gw.http.get("/metrics")).text)
    key = ("messages_bridge_budget_warnings_total", (("key", "alice"),))
    assert after.get(key, 0) - before.get(key, 0) == 1
    rows = await gw.rows()
    assert [round(r["cost_usd"], 7) for r in rows] == [0.0004275] * 3 + [0.0]


async def test_budget_spend_survives_a_restart(
    open_team: Open, upstream: FakeUpstream, team_settings: Callable[..., Any]
) -> None:
    settings = team_settings()
    gw = await open_team(team=settings)
    secret = gw.team.store.create("alice", Limits(budget_usd=0.0005, budget_period="day"))
    await gw.team.keyring.reload()
    upstream.script.push(Reply(json_body=canary_reply()), Reply(json_body=canary_reply()))
    assert (await gw.post(secret)).status_code == 200
    assert (await gw.post(secret)).status_code == 200
    await gw.team.writer.flush()
    again = await open_team(team=settings)
    answer = await again.post(secret)
    assert answer.status_code == 402 and "daily budget" in answer.json()["error"]["message"]


class _DownCounters:
    async def admit(self, ask: Ask) -> Verdict:
        raise CountersUnavailable("down")

    def settle(self, s: Settlement) -> None:
        raise AssertionError("nothing was admitted, so nothing is settled")

    async def flush(self) -> None:
        return None

    async def seed_spend(self, key: str, period: str, spent: int, ttl: int) -> None:
        raise CountersUnavailable("down")

    async def aclose(self) -> None:
        return None


async def test_an_unreachable_counter_store_fails_open_by_default_and_closed_when_configured() -> None:
    alice = Identity(kind="key", tenant="alice", name="alice", limits=Limits(rpm=1), label="alice")
    opened = Limiter(_DownCounters(), StaticPriceTable(), fail_open=True)
    ticket = await opened.admit(alice, upstream_model="gpt-5", estimate=10)
    assert ticket.ask is None
    closed = Limiter(_DownCounters(), StaticPriceTable(), fail_open=False)
    with pytest.raises(OverloadedError):
        await closed.admit(alice, upstream_model="gpt-5", estimate=10)


async def test_a_disconnected_request_still_settles_its_debit_and_is_ledgered(open_team: Open) -> None:
    """A client disconnect cancels the handler and `finish` runs inside that cancellation: it must not await."""
    gw, secret = await _keyed(open_team, max_concurrency=1)
    assert not inspect.iscoroutinefunction(gw.team.finish), "a cancellation can land on any await"
    identity = await gw.team.keyring.authenticate(secret)
    ticket = await gw.team.limiter.admit(identity, upstream_model="gpt-5", estimate=10)
    assert (ticket.ask is not None, ticket.settled) == (True, False)
    scope: dict[str, Any] = {"state": {"identity": identity, "team_ticket": ticket}, "headers": [], "path": "/v1/x"}
    gw.team.finish(scope, RequestRecord(), 499, datetime.now(UTC))
    assert ticket.settled
    again = await gw.team.limiter.admit(identity, upstream_model="gpt-5", estimate=10)  # the lease was released
    assert again.ask is not None
    assert [row["status"] for row in await gw.rows()] == [499]
