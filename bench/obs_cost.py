"""Cost of observability on the hot path: the same gateway with and without it, in one process, interleaved.

The upstream is an in-process `httpx.MockTransport` with a canned reply, and the client talks to the app through
`httpx.ASGITransport`, so the numbers are the gateway's own CPU time per request (no network, no sockets).
"With" = access-log middleware + JSON log line (to /dev/null) + Prometheus metrics; "without" =
`create_app(..., observability=False)` (the correlation id stays in both: it is behaviour, not observability).

    python -m bench.obs_cost [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx

from bench.canned import canned_upstream
from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]}


async def _run(app: Any, n: int, stream: bool) -> float:
    """Mean CPU seconds of this process per request over `n` sequential requests (CPU, not wall: shared machine)."""
    body = {**BODY, "stream": stream}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        start = time.process_time()
        for _ in range(n):
            reply = await http.post("/v1/messages", json=body)
            assert reply.status_code == 200, reply.text
        return (time.process_time() - start) / n


async def main(requests: int, rounds: int) -> None:
    settings = Settings(openai_api_key="sk-bench", openai_base_url="http://upstream.bench/v1", max_retries=0)
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 (once, before measuring)
        configure_logging(settings, stream=sink)
        apps = {
            flag: create_app(settings, transport=httpx.MockTransport(canned_upstream), observability=flag)
            for flag in (True, False)
        }
        lifespans = [app.router.lifespan_context(app) for app in apps.values()]
        for lifespan in lifespans:
            await lifespan.__aenter__()
        for stream in (False, True):
            samples: dict[bool, list[float]] = {True: [], False: []}
            for flag in (True, False):
                await _run(apps[flag], requests // 10, stream)  # warm-up
            for _ in range(rounds):
                for flag in (False, True):
                    samples[flag].append(await _run(apps[flag], requests, stream))
            on, off = min(samples[True]), min(samples[False])  # the least-disturbed round of each
            print(
                f"{'stream' if stream else 'non-stream'}: without {off * 1e6:.0f} µs/req, with {on * 1e6:.0f} µs/req,"
                f" cost {(on - off) * 1e6:+.0f} µs/req ({(on / off - 1) * 100:+.1f}%)"
                f"  [best of {rounds} rounds × {requests} requests]"
            )
        for lifespan in lifespans:
            await lifespan.__aexit__(None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
