"""The gateway's aiohttp transport against the maintained `httpx-aiohttp` one and httpx's own, side by side.

Each transport sends the same requests to the fast fake upstream (bench/upstream.py, its own process) through an
`httpx.AsyncClient`, as the gateway does: the body is read with `aiter_raw` (the gateway's bounded reader does the
same). The figure is this process's CPU time per request (the client side only), best of several interleaved rounds,
so the ratios hold on a shared machine. The upstream answers a 10-delta text stream or its JSON form.

    pip install -r bench/requirements.txt   # httpx-aiohttp
    python -m bench.transport_cost [--requests 2000] [--rounds 5] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.procs import HOST, Child, free_port
from messages_bridge.upstream.aiohttp_transport import AiohttpTransport

BODY = b'{"model":"gpt-5","input":"Hello there","stream":%s}'
Factory = Callable[[], httpx.AsyncBaseTransport]


def transports(connections: int) -> dict[str, Factory]:
    """The contenders, each built fresh per round (its own connection pool)."""
    found: dict[str, Factory] = {
        "gateway (upstream/aiohttp_transport.py)": lambda: AiohttpTransport(max_connections=connections),
        "httpx (httpcore)": lambda: httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=connections)),
    }
    try:
        from httpx_aiohttp import AiohttpTransport as Maintained  # optional: bench/requirements.txt
    except ImportError:
        print("httpx-aiohttp is not installed (pip install -r bench/requirements.txt): compared without it")
    else:
        found["httpx-aiohttp"] = lambda: Maintained(limits=httpx.Limits(max_connections=connections))
    return found


async def _one(http: httpx.AsyncClient, url: str, body: bytes) -> None:
    request = http.build_request("POST", url, content=body, headers={"content-type": "application/json"})
    response = await http.send(request, stream=True)
    try:
        assert response.status_code == 200, response.status_code
        async for _ in response.aiter_raw():
            pass
    finally:
        await response.aclose()


async def _round(factory: Factory, url: str, body: bytes, requests: int, concurrency: int) -> float:
    """CPU seconds of this process per request, after a warm-up that opens the pool's connections."""
    async with httpx.AsyncClient(transport=factory(), timeout=30.0) as http:
        await asyncio.gather(*(_one(http, url, body) for _ in range(concurrency)))
        start = time.process_time()
        for _ in range(requests // concurrency):
            await asyncio.gather(*(_one(http, url, body) for _ in range(concurrency)))
        return (time.process_time() - start) / (requests // concurrency * concurrency)


async def compare(port: int, requests: int, rounds: int, concurrency: int) -> None:
    url = f"http://{HOST}:{port}/v1/responses"
    contenders = transports(concurrency)
    for stream in (False, True):
        body = BODY % (b"true" if stream else b"false")
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, factory in contenders.items():
                samples[name].append(await _round(factory, url, body, requests, concurrency))
        best = {name: min(values) for name, values in samples.items()}
        ours = best["gateway (upstream/aiohttp_transport.py)"]
        print(f"{'stream' if stream else 'non-stream'}, concurrency {concurrency}, best of {rounds} × {requests}:")
        for name, value in best.items():
            print(f"  {name:42} {value * 1e6:7.0f} µs CPU/request  ({value / ours:.2f}× the gateway's)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="transport-cost-")) / "upstream.log"
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    with Child(argv, log=log, cores=os.sched_getaffinity(0)) as upstream:
        if not upstream.wait_port(port, timeout=20):
            raise SystemExit(f"the fake upstream did not start:\n{upstream.log_tail()}")
        asyncio.run(compare(port, args.requests, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
