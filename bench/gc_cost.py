"""What the garbage collector costs the gateway, with CPython's defaults and with the server's settings.

`messages-bridge serve` settles its heap once the app is built (`serving/heap.py`: start-up objects frozen, the
young generation collected after 10,000 net allocations instead of 700). This runs the same app in one process,
its canned upstream behind `httpx.MockTransport` (`bench/canned.py`), with the Claude Code capture's 76 KB request
sent by 32 concurrent clients through `httpx.ASGITransport`, and switches between the two settings round by round.
Printed: CPU per request in each, their ratio, and the collections counted per 1,000 requests.

    python -m bench.gc_cost [--requests 1000] [--rounds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from typing import Any

import httpx

from bench.canned import canned_upstream
from bench.options import DEFAULT_CAPTURE
from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging
from messages_bridge.serving import heap

DEFAULT_THRESHOLD = gc.get_threshold()


def _settle(served: bool) -> None:
    if served:
        heap.settle()
    else:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_THRESHOLD)
        gc.collect()


async def _round(http: httpx.AsyncClient, body: bytes, requests: int, concurrency: int) -> tuple[float, int]:
    """CPU seconds per request and collections over `requests` requests sent by `concurrency` clients."""
    left = requests

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            reply = await http.post("/v1/messages", content=body, headers={"content-type": "application/json"})
            assert reply.status_code == 200, reply.text

    before = sum(s["collections"] for s in gc.get_stats())
    start = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu = (time.process_time() - start) / requests
    return cpu, sum(s["collections"] for s in gc.get_stats()) - before


async def main(requests: int, rounds: int, concurrency: int) -> None:
    capture: dict[str, Any] = json.loads(DEFAULT_CAPTURE.read_text())
    body = json.dumps({**capture["request"]["body"], "stream": False}).encode()
    settings = Settings(openai_api_key="sk-bench", openai_base_url="http://upstream.bench/v1", max_retries=0)
    with open(os.devnull, "w") as sink:  # noqa: ASYNC230 (once, before measuring)
        configure_logging(settings, stream=sink)
        app = create_app(settings, transport=httpx.MockTransport(canned_upstream))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                await _round(http, body, requests // 5, concurrency)  # warm-up
                samples: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
                for _ in range(rounds):
                    for served in (False, True):
                        _settle(served)
                        samples[served].append(await _round(http, body, requests, concurrency))
                _settle(False)
    (off, off_gc), (on, on_gc) = min(samples[False]), min(samples[True])  # the least-disturbed round of each
    print(f"CPython defaults: {off * 1e6:.0f} µs/req, {off_gc * 1000 / requests:.0f} collections per 1,000 requests")
    print(f"served settings:  {on * 1e6:.0f} µs/req, {on_gc * 1000 / requests:.0f} collections per 1,000 requests")
    print(f"ratio served/defaults: {on / off:.2f}×  [best of {rounds} rounds × {requests} requests, c={concurrency}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds, args.concurrency))
