"""Redis stopped under a running gateway: requests are admitted (counted loudly) by default, or refused with 529."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from messages_bridge.team import redis_counters
from messages_bridge.team.keys import Limits
from tests.observability.helpers import scrape
from tests.services import RedisServer
from tests.team.conftest import TeamGateway

pytestmark = pytest.mark.slow
Open = Callable[..., Awaitable[TeamGateway]]
ERRORS = "messages_bridge_limits_store_errors_total"


async def _errors(gw: TeamGateway, outcome: str) -> float:
    return scrape((await gw.http.get("/metrics")).text).get((ERRORS, (("outcome", outcome),)), 0.0)


async def test_redis_down_fails_open_by_default_and_limits_resume_when_it_is_back(
    open_team: Open, team_settings: Callable[..., Any], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_counters, "COOL_DOWN", 0.0)
    gw = await open_team(team=team_settings(redis_url=redis_server.url))
    secret = gw.team.store.create("alice", Limits(rpm=3))
    await gw.team.keyring.reload()
    assert (await gw.post(secret)).status_code == 200
    before = await _errors(gw, "admitted")
    await asyncio.to_thread(redis_server.stop)
    assert [(await gw.post(secret)).status_code for _ in range(5)] == [200] * 5, "fail open: no 429 without Redis"
    assert await _errors(gw, "admitted") - before == 5
    await asyncio.to_thread(redis_server.start)  # a fresh, empty Redis
    statuses = [(await gw.post(secret)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


async def test_redis_down_fails_closed_when_configured(
    open_team: Open, team_settings: Callable[..., Any], redis_server: RedisServer
) -> None:
    gw = await open_team(team=team_settings(redis_url=redis_server.url, redis_failure="closed"))
    secret = gw.team.store.create("alice", Limits(rpm=3))
    await gw.team.keyring.reload()
    await asyncio.to_thread(redis_server.stop)
    refused = await gw.post(secret)
    assert refused.status_code == 529 and refused.json()["error"]["type"] == "overloaded_error"
    assert refused.headers["retry-after"] == "1"
    assert (await gw.post()).status_code == 401, "authentication still comes first"
