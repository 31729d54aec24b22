"""Counters: a budget reservation bounds what parallel requests can overshoot; with Redis, one round trip a
request (the admission), settlements written in the background and folded into the next admission."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from redis.asyncio.connection import Connection

from messages_bridge.errors import BillingError
from messages_bridge.team.budget import NANO, StaticPriceTable, period_id
from messages_bridge.team.counters import Counters, MemoryCounters
from messages_bridge.team.identity import Identity
from messages_bridge.team.keys import Limits
from messages_bridge.team.limits import Limiter, Ticket, cost_nano
from messages_bridge.team.redis_counters import RedisCounters, redis_keys
from messages_bridge.translate.usage import TokenUsage
from tests.services import RedisServer
from tests.team.conftest import BODY, PRICES, TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]
TABLE = StaticPriceTable(PRICES)
PRICE = TABLE.price_for("gpt-5")
MAX_TOKENS = 64
ESTIMATE = 10
BOUND = cost_nano(PRICE, TokenUsage(input_tokens=ESTIMATE, output_tokens=MAX_TOKENS))  # $0.0006525
REAL = TokenUsage(input_tokens=ESTIMATE, output_tokens=20)  # what each answer really used


def _alice(**limits: Any) -> Identity:
    return Identity(kind="key", tenant="alice", name="alice", limits=Limits(**limits), label="alice")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow)])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    store = RedisCounters(server.url)
    yield store
    await store.aclose()


async def _admit(limiter: Limiter, identity: Identity) -> Ticket | BillingError:
    try:
        return await limiter.admit(identity, upstream_model="gpt-5", estimate=ESTIMATE, max_tokens=MAX_TOKENS)
    except BillingError as refused:
        return refused


async def test_parallel_requests_overshoot_a_budget_by_at_most_one_request(counters: Counters) -> None:
    """Each admission reserves its most expensive outcome, so ten requests in flight at once cannot all pass."""
    budget = 1.5 * BOUND / NANO  # room for one request's bound and a half
    limiter = Limiter(counters, TABLE, fail_open=False)
    alice = _alice(budget_usd=budget, budget_period="day")
    outcomes = await asyncio.gather(*(_admit(limiter, alice) for _ in range(10)))
    admitted = [t for t in outcomes if isinstance(t, Ticket)]
    assert len(admitted) == 2, "0 < budget admits the first, BOUND < budget the second, 2 × BOUND ≥ budget stops"
    assert all(isinstance(t, BillingError) for t in outcomes if not isinstance(t, Ticket))
    spent = sum(limiter.settle(t, TokenUsage(input_tokens=ESTIMATE, output_tokens=MAX_TOKENS)) for t in admitted)
    assert spent <= budget * NANO + BOUND, "the worst case overshoots by at most the last admitted request"
    await counters.flush()
    after = await _admit(limiter, alice)
    assert isinstance(after, BillingError), "spent (2 × BOUND) ≥ budget"


async def test_a_settled_reservation_gives_back_what_the_answer_did_not_use(counters: Counters) -> None:
    limiter = Limiter(counters, TABLE, fail_open=False)
    alice = _alice(budget_usd=1.5 * BOUND / NANO, budget_period="day")
    for _ in range(4):  # each answer costs far less than its bound: sequential requests keep passing
        ticket = await _admit(limiter, alice)
        assert isinstance(ticket, Ticket)
        limiter.settle(ticket, REAL)  # with Redis: queued, and sent ahead of the next admission


class _Sends:
    """Redis writes (one per round trip: a pipeline is one write), by the task that made them."""

    def __init__(self) -> None:
        self.by_task: dict[str, int] = {}

    def count(self) -> int:
        return sum(n for name, n in self.by_task.items() if name != "writer")


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sends]:
    seen = _Sends()
    original = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        task = asyncio.current_task()
        name = "writer" if task is not None and task.get_coro().__name__ == "_write_loop" else "request"  # type: ignore[union-attr]
        seen.by_task[name] = seen.by_task.get(name, 0) + 1
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    yield seen


@pytest.mark.slow
async def test_with_redis_a_request_makes_one_round_trip_and_settles_in_the_background(
    open_team: Open, team_settings: Callable[..., Any], redis_server: RedisServer, sends: _Sends
) -> None:
    gw = await open_team(team=team_settings(redis_url=redis_server.url))
    limits = {"rpm": 1000, "tpm": 10**9, "max_concurrency": 4, "budget_usd": 100.0, "budget_period": "day"}
    secret = gw.create_key("alice", **limits)
    await gw.team.keyring.reload()
    assert (await gw.post(secret)).status_code == 200  # the first also seeds the period's spend from the ledger
    stream = {**BODY, "stream": True}
    await gw.team.limiter.counters.flush()
    before = sends.count()
    for i in range(10):
        answer = await (gw.post(secret, stream) if i % 2 else gw.post(secret))
        assert answer.status_code == 200
    assert sends.count() - before == 10, "one round trip per request: the admission (with any queued settlement)"
    assert sends.by_task.get("writer", 0) <= 11, "settlements go out in background pipelines, batched"
    await gw.team.limiter.counters.flush()
    spend = sum(round(r["cost_usd"] * NANO) for r in await gw.rows())
    store = redis.Redis.from_url(redis_server.url)
    _, _, conc, spent, reserved = redis_keys("alice", period_id("day", datetime.now(UTC)))
    assert store.zcard(conc) == 0, "every concurrency lease was let go"
    assert int(store.get(spent) or 0) == spend, "the spend in Redis is the ledger's"
    assert int(store.get(reserved) or 0) == 0, "no reservation is left behind"
    store.close()
