"""Cost of routing on the hot path: the same gateway without a routing file and with a 50-route, two-upstream one
(the matching route last, a header condition before it), in one process, interleaved.

The upstream is an in-process `httpx.MockTransport` with a canned reply and the client talks to the app through
`httpx.ASGITransport`, so the figures are the gateway's own CPU seconds per request (no sockets; CPU time, not wall
time, because the machine is shared). The request is a real Claude Code first turn (76 KB, 24 tools).

    python -m bench.routing_cost [--requests 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.canned import canned_upstream
from bench.targets import routing_config
from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging

CAPTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/captures/messages_main_first_turn_opus_default.json"


async def _run(app: Any, body: bytes, n: int) -> float:
    """Mean CPU seconds of this process per request over `n` sequential requests."""
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        start = time.process_time()
        for _ in range(n):
            reply = await http.post("/v1/messages", content=body, headers=headers)
            assert reply.status_code == 200, reply.text
            await reply.aread()
        return (time.process_time() - start) / n


async def main(requests: int, rounds: int) -> None:
    capture = json.loads(CAPTURE.read_text())["request"]["body"]
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as sink:  # noqa: ASYNC230 - once, before measuring
        path = Path(tmp) / "routing.yaml"
        path.write_text(routing_config("http://upstream.bench/v1"))
        os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
        common: dict[str, Any] = {"max_retries": 0, "openai_api_key": "sk-bench"}
        plain = Settings(openai_base_url="http://upstream.bench/v1", **common)
        routed = Settings(config=str(path), **common)
        configure_logging(plain, stream=sink)
        transport = httpx.MockTransport(canned_upstream)
        apps = {"no file": create_app(plain, transport=transport), "50 routes": create_app(routed, transport=transport)}
        lifespans = [app.router.lifespan_context(app) for app in apps.values()]
        for lifespan in lifespans:
            await lifespan.__aenter__()
        for stream in (False, True):
            body = json.dumps({**capture, "stream": stream}).encode()
            samples: dict[str, list[float]] = {name: [] for name in apps}
            for app in apps.values():
                await _run(app, body, max(1, requests // 10))  # warm-up
            for _ in range(rounds):
                for name, app in apps.items():
                    samples[name].append(await _run(app, body, requests))
            off, on = min(samples["no file"]), min(samples["50 routes"])  # the least-disturbed round of each
            print(
                f"{'stream' if stream else 'non-stream'}: no file {off * 1e6:.0f} µs/req, 50 routes {on * 1e6:.0f} "
                f"µs/req, ratio {on / off:.3f} (throughput ratio {off / on:.3f}) [best of {rounds} × {requests}]"
            )
        for lifespan in lifespans:
            await lifespan.__aexit__(None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
