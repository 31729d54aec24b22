"""With a routing file, the model profiles' `price` is the price table, and the ledger names the upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.team.keys import Limits
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import canary_reply
from tests.team.conftest import BODY, TeamGateway

CONFIG = """upstreams:
  primary: {{base_url: '{url}', api_keys: ['sk-primary']}}
models:
  gpt-5: {{price: {{input: 2.5, cached_input: 0.25, output: 20.0}}}}
routes:
  - {{match: "*", targets: [primary/gpt-5]}}
"""


@pytest.fixture
async def routed_team(
    tmp_path: Path, upstream: FakeUpstream, team_settings: Callable[..., Any]
) -> AsyncIterator[TeamGateway]:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG.format(url=upstream.base_url))
    app = create_app(Settings(config=str(path), max_retries=0, shutdown_grace=2.0), team=team_settings(prices={}))
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=30)
    yield TeamGateway(app, http)
    await http.aclose()
    await ctx.__aexit__(None, None, None)


async def test_the_routing_files_prices_cost_the_requests_and_drive_the_budget(
    routed_team: TeamGateway, upstream: FakeUpstream
) -> None:
    gw = routed_team
    secret = gw.team.store.create("alice", Limits(budget_usd=0.0017, budget_period="week"))
    await gw.team.keyring.reload()
    upstream.script.push(*(Reply(json_body=canary_reply()) for _ in range(2)))
    # canary_reply at these prices: 100 × $2.5 + 20 × $0.25 + 30 × $20 per million = $0.000855
    assert (await gw.post(secret)).status_code == 200
    assert (await gw.post(secret)).status_code == 200
    refused = await gw.post(secret)
    assert refused.status_code == 402 and "weekly budget of $0.0017" in refused.json()["error"]["message"]
    rows = await gw.rows()
    assert [round(r["cost_usd"], 7) for r in rows] == [0.000855, 0.000855, 0.0]
    assert rows[0]["upstream"] == "primary" and rows[0]["upstream_model"] == "gpt-5"


async def test_count_tokens_and_models_need_the_key_with_a_routing_file(routed_team: TeamGateway) -> None:
    gw = routed_team
    secret = gw.team.store.create("haiku", Limits(models=("claude-haiku-*",)))
    await gw.team.keyring.reload()
    assert (await gw.http.get("/v1/models")).status_code == 401
    assert (await gw.http.get("/v1/models", headers={"x-api-key": secret})).status_code == 200
    count = {"model": "claude-opus-4-8", "messages": BODY["messages"]}
    denied = await gw.http.post("/v1/messages/count_tokens", json=count, headers={"x-api-key": secret})
    assert denied.status_code == 403
