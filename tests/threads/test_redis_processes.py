"""Two real gateway processes sharing one real Redis: a thread created on one continues on the other, the Python
SDK's 20-turn tool loop alternates between them, Redis's dump holds no plaintext, and a Redis restart costs at most
a replay, never a wrong answer."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
import redis

from tests.processes import GatewayProcess, clean_env, gateway_process
from tests.services import RedisServer
from tests.threads.helpers import BETA, continue_, create, error_code, tool_results
from tests.threads.python_sdk import PROMPT, run
from tests.threads.sdk_gateway import ANSWER, TURNS

pytestmark = pytest.mark.slow

KEY = "gw-redis-key"
CANARY = "canary-3b9f-never-in-redis"
MARKED = f"{PROMPT}. {CANARY}"  # the prompt, with a marker that must never reach Redis in plaintext


@pytest.fixture
def gateways(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    """Two `messages-bridge serve` processes (demo upstream) with the same Redis and thread key."""
    key = base64.b64encode(os.urandom(32)).decode()
    env = clean_env(BRIDGE_REDIS_URL=redis_server.url, BRIDGE_THREADS_KEY=key, BRIDGE_API_KEYS=KEY)
    with ExitStack() as stack:
        yield [stack.enter_context(gateway_process(env, tmp_path / f"gateway{i}.log")) for i in range(2)]


def post(gateway: GatewayProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/messages", json=body, headers={**BETA, "x-api-key": KEY}, timeout=30)


def test_a_thread_created_on_one_process_continues_on_the_other(
    gateways: list[GatewayProcess], redis_server: RedisServer
) -> None:
    a, b = gateways
    first = post(a, create())
    assert first.status_code == 200, first.text
    with redis.Redis.from_url(redis_server.url) as raw:
        ttl = raw.pttl(f"mb:thr:{{{_tenant()}}}:{first.json()['id']}")
    assert 0 < ttl <= 300_000  # Redis expires it five minutes after the stored reply
    second = post(b, continue_(first.json()["id"], tool_results(first.json())))
    assert second.status_code == 200, second.text
    again = post(a, continue_(first.json()["id"], tool_results(first.json())))
    assert error_code(again) == "thread_already_continued"
    third = post(a, continue_(second.json()["id"], tool_results(second.json())))
    assert third.status_code == 200, third.text


def _tenant() -> str:
    from messages_bridge.app.tenant import tenant_of

    return tenant_of({"x-api-key": KEY}, (KEY.encode(),))


class Alternating:
    """An SDK client whose requests go to the two gateways in turn; `sent` records (port, status, error code)."""

    def __init__(self, gateways: list[GatewayProcess]) -> None:
        self.ports = [httpx2.URL(g.url).port for g in gateways]
        self.sent: list[tuple[int | None, int, str | None]] = []
        self.http = httpx2.Client(event_hooks={"request": [self._route], "response": [self._note]})
        self.client = anthropic.Anthropic(base_url=gateways[0].url, api_key=KEY, max_retries=0, http_client=self.http)

    def _route(self, request: httpx2.Request) -> None:
        if request.url.path == "/v1/messages":
            request.url = request.url.copy_with(port=self.ports[len(self.sent) % 2])

    def _note(self, response: httpx2.Response) -> None:
        if response.request.url.path != "/v1/messages":
            return
        code = None
        if response.status_code >= 400:
            response.read()
            code = response.json()["error"].get("details", {}).get("error_code")
        self.sent.append((response.request.url.port, response.status_code, code))


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdk_tool_loop_alternates_between_processes_and_redis_keeps_no_plaintext(
    gateways: list[GatewayProcess], redis_server: RedisServer, stream: bool
) -> None:
    alternating = Alternating(gateways)
    with alternating.client:
        assert run(alternating.client, system=f"Be terse. {CANARY}", prompt=MARKED, stream=stream) == ANSWER
    assert [status for _, status, _ in alternating.sent] == [200] * (TURNS + 1)
    assert {port for port, _, _ in alternating.sent} == set(alternating.ports)
    with redis.Redis.from_url(redis_server.url) as raw:
        assert raw.keys("mb:thr:*")  # the thread is held there…
        raw.save()
    dump = (redis_server.directory / "dump.rdb").read_bytes()
    assert b"mb:thr:" in dump  # …and in the dump…
    assert CANARY.encode() not in dump  # …as ciphertext only
    assert b"Please call" not in dump and b"Be terse" not in dump


def test_a_redis_restart_costs_at_most_a_replay(gateways: list[GatewayProcess], redis_server: RedisServer) -> None:
    alternating = Alternating(gateways)
    seen: list[str] = []

    def restart_redis(message: Any) -> None:
        seen.append(message.id)
        if len(seen) == 3:
            redis_server.restart()  # no persistence: every thread is lost

    with alternating.client:
        assert run(alternating.client, stream=False, prompt=MARKED, each=restart_redis) == ANSWER
    failures = [(status, code) for _, status, code in alternating.sent if status != 200]
    assert failures == [(404, "thread_not_found")], alternating.sent
