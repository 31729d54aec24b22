"""Fixtures of the team tests: gateways with their own data directory (SQLite) or shared PostgreSQL + Redis."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from starlette.applications import Starlette

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.team.gate import Team
from messages_bridge.team.keys import Limits
from messages_bridge.team.settings import TeamSettings
from tests.conftest import GATEWAY
from tests.observability.helpers import capture_logs
from tests.services import PostgresServer, RedisServer, running_postgres, running_redis

__all__ = ["capture_logs"]

PRICES = {"gpt-5": {"price": {"input": 1.25, "cached_input": 0.125, "output": 10.0}}}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}


@dataclass
class TeamGateway:
    app: Starlette
    http: httpx.AsyncClient

    @property
    def team(self) -> Team:
        team: Team = self.app.state.team
        return team

    def create_key(self, name: str, **limits: Any) -> str:
        return self.team.store.create(name, Limits(**limits))

    async def post(
        self, key: str | None = None, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = key
        return await self.http.post("/v1/messages", json=body or BODY, headers=sent)

    async def rows(self) -> list[dict[str, Any]]:
        """The ledger rows so far (after flushing this gateway's queue)."""
        await self.team.writer.flush()
        from sqlalchemy import select

        from messages_bridge.team.schema import ledger

        with self.team.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(ledger).order_by(ledger.c.time)).mappings()]


@pytest.fixture(scope="session")
def shared_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, RedisServer]]:
    """One PostgreSQL and one Redis for the session's shared-backend tests (each test gets its own database)."""
    pg_dir = Path(tempfile.mkdtemp(prefix="messages-bridge-pg-"))
    try:
        with running_postgres(pg_dir) as pg, running_redis(tmp_path_factory.mktemp("redis")) as redis:
            yield pg, redis
    finally:
        shutil.rmtree(pg_dir, ignore_errors=True)


def fresh_database(pg: PostgresServer) -> str:
    name = "t_" + uuid.uuid4().hex
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["embedded", pytest.param("shared", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where keys, ledger and counters live (TeamSettings overrides): SQLite + memory, or PostgreSQL + Redis."""
    if request.param == "embedded":
        return {}
    pg, redis_server = request.getfixturevalue("shared_services")
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return {"database_url": fresh_database(pg), "redis_url": redis_server.url}


@pytest.fixture
def team_settings(tmp_path: Path, backend: dict[str, Any]) -> Callable[..., TeamSettings]:
    def make(**overrides: Any) -> TeamSettings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "ledger_flush_interval": 0.05,
            "ledger_retry_interval": 0.1,
            "prices": PRICES,
            **backend,
        }
        values.update(overrides)
        return TeamSettings(**values)

    return make


@pytest.fixture
async def open_team(
    make_settings: Callable[..., Settings], team_settings: Callable[..., TeamSettings]
) -> AsyncIterator[Callable[..., Awaitable[TeamGateway]]]:
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def open_(team: TeamSettings | None = None, **overrides: Any) -> TeamGateway:
        app = create_app(make_settings(**overrides), team=team or team_settings())
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=30)
        opened.append((ctx, http))
        return TeamGateway(app, http)

    yield open_
    for ctx, http in reversed(opened):
        await http.aclose()
        await ctx.__aexit__(None, None, None)
