"""Real gateway processes: two replicas sharing PostgreSQL + Redis enforce one limit; no ledger row is lost when
PostgreSQL restarts mid-load or when the gateway gets SIGTERM with rows still queued."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from messages_bridge.demo.server import Reply, Script, create_upstream_app
from messages_bridge.team.db import Database, make_engine, upgrade
from messages_bridge.team.keys import KeyStore, Limits
from messages_bridge.team.schema import ledger
from messages_bridge.team.settings import TeamSettings
from tests.observability.helpers import canary_reply
from tests.processes import GatewayProcess, clean_env, gateway_process, wait_for
from tests.servers import ThreadedServer, serving
from tests.services import PostgresServer, RedisServer
from tests.team.conftest import BODY, PRICES, TeamGateway

pytestmark = pytest.mark.slow

COST = 0.0004275  # canary_reply at the PRICES of gpt-5


@contextmanager
def replica(tmp_path: Path, name: str, upstream: ThreadedServer, **env: str) -> Iterator[GatewayProcess]:
    """`messages-bridge serve` in its own process group, its own data directory, the fake upstream behind it."""
    settings = clean_env(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"{upstream.url}/v1",
        BRIDGE_MAX_RETRIES="0",
        BRIDGE_DATA_DIR=str(tmp_path / f"data-{name}"),
        BRIDGE_PRICES=json.dumps(PRICES),
        **env,
    )
    with gateway_process(settings, tmp_path / f"{name}.log", "--shutdown-grace", "10") as started:
        yield started


def _shared(pg: PostgresServer, rds: RedisServer) -> dict[str, str]:
    return {"BRIDGE_DATABASE_URL": pg.url, "BRIDGE_REDIS_URL": rds.url}


def _create_keys(pg: PostgresServer, tmp_path: Path, **keys: Limits) -> dict[str, str]:
    engine = make_engine(TeamSettings(data_dir=tmp_path / "cli", database_url=pg.url))
    upgrade(engine)
    try:
        return {name: KeyStore(Database(engine=engine)).create(name, limits) for name, limits in keys.items()}
    finally:
        engine.dispose()


async def _post(base: str, key: str, **headers: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.post("/v1/messages", json=BODY, headers={"x-api-key": key, **headers})
        return answer.status_code


def _rejected(base: str, key: str) -> bool:
    return asyncio.run(_post(base, key)) == 401


def _ledger_count(url: str, where: Any = None) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        query = select(func.count()).select_from(ledger)
        with engine.connect() as conn:
            return int(conn.execute(query if where is None else query.where(where)).scalar_one())
    finally:
        engine.dispose()


def test_two_replicas_share_one_rpm_and_one_budget(
    tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    rpm, budget_requests = 6, 3
    secrets = _create_keys(
        postgres_server,
        tmp_path,
        rpm=Limits(rpm=rpm),
        budget=Limits(budget_usd=COST * budget_requests, budget_period="day"),
    )
    script = Script()
    script.push(*(Reply(json_body=canary_reply()) for _ in range(4 * rpm)))
    with (
        serving(create_upstream_app(script)) as upstream,
        replica(tmp_path, "a", upstream, **_shared(postgres_server, redis_server)) as a,
        replica(tmp_path, "b", upstream, **_shared(postgres_server, redis_server)) as b,
    ):

        async def burst() -> list[int]:
            calls = [_post((a, b)[i % 2].url, secrets["rpm"]) for i in range(2 * rpm)]
            return list(await asyncio.gather(*calls))

        statuses = asyncio.run(burst())
        assert sorted(statuses) == [200] * rpm + [429] * rpm, statuses

        async def spend() -> list[int]:
            return [await _post((a, b)[i % 2].url, secrets["budget"]) for i in range(2 * budget_requests)]

        assert asyncio.run(spend()) == [200] * budget_requests + [402] * budget_requests
    wait_for(lambda: _ledger_count(postgres_server.url) == 2 * rpm + 2 * budget_requests)
    assert _ledger_count(postgres_server.url, ledger.c.status == 402) == budget_requests


def test_revocation_and_rotation_reach_every_replica(
    tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    secrets = _create_keys(postgres_server, tmp_path, alice=Limits(), bob=Limits())
    engine = make_engine(TeamSettings(data_dir=tmp_path / "cli", database_url=postgres_server.url))
    store = KeyStore(Database(engine=engine))
    with (
        serving(create_upstream_app(Script())) as upstream,
        replica(tmp_path, "a", upstream, **_shared(postgres_server, redis_server)) as a,
        replica(tmp_path, "b", upstream, **_shared(postgres_server, redis_server)) as b,
    ):
        for r in (a, b):
            assert asyncio.run(_post(r.url, secrets["alice"])) == 200
        store.revoke("alice")
        new_bob = store.rotate("bob", grace=timedelta(0))
        for r in (a, b):  # within the 10 s key cache
            wait_for(functools.partial(_rejected, r.url, secrets["alice"]), within=15)
            wait_for(functools.partial(_rejected, r.url, secrets["bob"]), within=15)
            assert asyncio.run(_post(r.url, new_bob)) == 200
    engine.dispose()


async def test_postgres_restart_mid_load_loses_no_ledger_row(
    tmp_path: Path,
    postgres_server: PostgresServer,
    make_settings: Any,
    open_team: Any,
    team_settings: Callable[..., TeamSettings],
) -> None:
    gw: TeamGateway = await open_team(team=team_settings(database_url=postgres_server.url))
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    ids: list[str] = []

    async def load(n: int) -> None:
        for _ in range(n):
            answer = await gw.post(secret)
            assert answer.status_code == 200
            ids.append(answer.headers["request-id"])

    await load(10)
    await asyncio.to_thread(postgres_server.stop)
    await load(10)  # keys come from the cache; rows go to the spool
    assert gw.team.writer.backlog > 0 or list(gw.team.settings.spool_dir.glob("*"))
    await asyncio.to_thread(postgres_server.start)
    await load(10)
    for _ in range(300):
        if gw.team.writer.backlog == 0:
            break
        await asyncio.sleep(0.1)
    rows = await gw.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(ids)


def test_sigterm_with_rows_still_queued_loses_none(tmp_path: Path) -> None:
    script = Script()
    with serving(create_upstream_app(script)) as upstream:
        data = tmp_path / "data-solo"
        # Flushes only every 60 s: every row is still queued in memory when the signal arrives.
        with replica(
            tmp_path, "solo", upstream, BRIDGE_LEDGER_FLUSH_INTERVAL="60", BRIDGE_LEDGER_BATCH_SIZE="1000"
        ) as gw:
            statuses = asyncio.run(_many(gw.url, 25))
            assert statuses == [200] * 25
            os.kill(gw.proc.pid, signal.SIGTERM)
            gw.proc.wait(timeout=20)
        engine = create_engine(f"sqlite:///{data / 'bridge.db'}")
        with engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(ledger)).scalar_one()
        engine.dispose()
        assert count == 25


async def _many(base: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answers = await asyncio.gather(*(http.post("/v1/messages", json=BODY) for _ in range(n)))
    return [a.status_code for a in answers]
