"""Cost of named keys with limits: the same gateway without keys, with a limited key (counters in memory), and
with the key's counters in Redis — one process, interleaved rounds, reported as ratios.

Each variant is served by uvicorn on 127.0.0.1 (a thread of this process) and called over one keep-alive
connection at concurrency 1; the upstream is an in-process `httpx.MockTransport` with a canned reply. CPU is this
process's (client + server) per request; latency is the client's. Every variant writes the ledger (SQLite).
Redis is the one at `--redis-url`, or a redis-server started in a temp dir. Round trips to Redis are counted by
wrapping the counter store's calls.

    python bench/team_cost.py [--requests 1000] [--rounds 5] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
from tests.servers import serving

from bench.canned import canned_upstream
from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging
from messages_bridge.team.budget import StaticPriceTable
from messages_bridge.team.counters import MemoryCounters
from messages_bridge.team.db import make_engine, upgrade
from messages_bridge.team.identity import Identity
from messages_bridge.team.keys import KeyStore, Limits
from messages_bridge.team.limits import Limiter
from messages_bridge.team.redis_counters import RedisCounters
from messages_bridge.team.settings import TeamSettings
from messages_bridge.translate.usage import TokenUsage

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]}
BIG = Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6, budget_usd=10**9)
PRICES = {"gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10.0}}


def _create_key(team: TeamSettings) -> str:
    engine = make_engine(team)
    upgrade(engine)
    try:
        return KeyStore(engine).create("bench", BIG)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.services import running_redis  # the test suite's throwaway redis-server

    with tempfile.TemporaryDirectory() as directory, running_redis(Path(directory)) as server:
        yield server.url


ROUND_TRIPS = {"admit": 0, "settle": 0}


def _count_round_trips() -> None:
    for name in ROUND_TRIPS:
        original = getattr(RedisCounters, name)

        async def counted(self: Any, arg: Any, _original: Any = original, _name: str = name) -> Any:
            ROUND_TRIPS[_name] += 1
            return await _original(self, arg)

        setattr(RedisCounters, name, counted)


async def _run(url: str, key: str | None, n: int) -> tuple[float, list[float]]:
    """(mean CPU seconds of this process per request, wall latencies) over `n` sequential requests."""
    headers = {"x-api-key": key} if key else {}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url) as http:
        start = time.process_time()
        for _ in range(n):
            began = time.perf_counter()
            reply = await http.post("/v1/messages", json=BODY, headers=headers)
            latencies.append(time.perf_counter() - began)
            assert reply.status_code == 200, reply.text
        return (time.process_time() - start) / n, latencies


LIMITED = Identity(kind="key", tenant="bench-limiter", name="bench-limiter", limits=BIG, label="bench")


async def _limiter_p50(counters: Any, n: int) -> tuple[float, float]:
    """p50 seconds of admission (before the upstream call) and of settlement (after the answer)."""
    limiter = Limiter(counters, StaticPriceTable(PRICES), fail_open=False)
    admit, settle = [], []
    for _ in range(n):
        began = time.perf_counter()
        ticket = await limiter.admit(LIMITED, upstream_model="gpt-5", estimate=12)
        admitted = time.perf_counter()
        await limiter.settle(ticket, TokenUsage(input_tokens=12, output_tokens=40))
        admit.append(admitted - began)
        settle.append(time.perf_counter() - admitted)
    return statistics.median(admit), statistics.median(settle)


async def main(requests: int, rounds: int, redis_url: str | None) -> None:
    settings = Settings(openai_api_key="sk-bench", openai_base_url="http://upstream.bench/v1", max_retries=0)
    with (
        open(os.devnull, "w") as sink,  # noqa: ASYNC230 (once, before measuring)
        tempfile.TemporaryDirectory() as data,
        _redis(redis_url) as rurl,
    ):
        configure_logging(settings, stream=sink)
        redis.Redis.from_url(rurl).flushall()
        _count_round_trips()
        variants = {
            "no keys": TeamSettings(data_dir=Path(data) / "open", prices=PRICES),
            "key, memory": TeamSettings(data_dir=Path(data) / "mem", prices=PRICES),
            "key, redis": TeamSettings(data_dir=Path(data) / "redis", prices=PRICES, redis_url=rurl),
        }
        keys: dict[str, str | None] = {}
        servers = contextlib.ExitStack()
        urls: dict[str, str] = {}
        with servers:
            for name, team in variants.items():
                keys[name] = None if name == "no keys" else _create_key(team)
                app = create_app(settings, transport=httpx.MockTransport(canned_upstream), team=team)
                urls[name] = servers.enter_context(serving(app)).url
            cpu: dict[str, list[float]] = {name: [] for name in urls}
            wall: dict[str, list[float]] = {name: [] for name in urls}
            for name in urls:
                await _run(urls[name], keys[name], requests // 10)  # warm-up
            before = dict(ROUND_TRIPS)
            for _ in range(rounds):
                for name in urls:
                    mean, latencies = await _run(urls[name], keys[name], requests)
                    cpu[name].append(mean)
                    wall[name].extend(latencies)
            trips = {k: ROUND_TRIPS[k] - before[k] for k in ROUND_TRIPS}
        memory = await _limiter_p50(MemoryCounters(), requests)
        shared = RedisCounters(rurl)
        remote = await _limiter_p50(shared, requests)
        await shared.aclose()
    best = {name: min(values) for name, values in cpu.items()}
    p50 = {name: statistics.median(values) for name, values in wall.items()}
    base = "no keys"
    print(json.dumps({"requests_per_round": requests, "rounds": rounds}))
    for name in urls:
        print(
            f"{name:12s} {best[name] * 1e6:6.0f} µs CPU/req (best round), p50 {p50[name] * 1e3:.3f} ms  "
            f"throughput ratio vs no keys {best[base] / best[name]:.3f}"
        )
    print(f"named key, memory: throughput cost {(best['key, memory'] / best[base] - 1) * 100:+.1f}% (target ≤ 5 %)")
    n = rounds * requests
    print(
        f"redis vs memory: p50 added {(p50['key, redis'] - p50['key, memory']) * 1e3:+.3f} ms (target ≤ 0.3 ms); "
        f"round trips per request: {trips['admit'] / n:.2f} to admit (one Lua script), "
        f"{trips['settle'] / n:.2f} to settle (one pipeline)"
    )
    print(
        f"limiter alone, p50: memory admit {memory[0] * 1e6:.0f} µs + settle {memory[1] * 1e6:.0f} µs; redis admit "
        f"{remote[0] * 1e6:.0f} µs (added on the request path: {(remote[0] - memory[0]) * 1e3:.3f} ms, target ≤ 0.3) "
        f"+ settle {remote[1] * 1e6:.0f} µs"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds, args.redis_url))
