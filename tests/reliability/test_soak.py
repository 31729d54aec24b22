"""Soak: 1,000 concurrent streams against the fake upstream, zero errors, and memory back to idle afterwards.

Besides RSS, pytest's unraisable-exception check turns any upstream socket dropped without being closed (a
ResourceWarning at garbage collection) into a failure, so a connection leak under load fails this test.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.reliability.faults import MESSAGE, busy_connections, ok_response
from tests.reliability.test_stream_faults import TEXT, parse_sse, text_of, upstream_events

STREAMS = 1000
MAX_GROWTH = 32 * 1024 * 1024  # RSS after a second round vs idle after the first: allocator slack, no leak
STREAM = {**MESSAGE, "stream": True}


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _round(http: httpx.AsyncClient, upstream: FakeUpstream) -> float:
    """STREAMS streams at once; every one must end with message_stop and the whole text. Returns seconds."""
    chunks = upstream_events(ok_response(TEXT))
    upstream.script.push(*[Reply(chunks=chunks, delay=0.01) for _ in range(STREAMS)])
    started = time.monotonic()
    replies = await asyncio.gather(*[http.post("/v1/messages", json=STREAM) for _ in range(STREAMS)])
    elapsed = time.monotonic() - started
    for reply in replies:
        assert reply.status_code == 200, reply.text[:200]
        frames = parse_sse(reply.text)
        assert frames[-1][0] == "message_stop" and text_of(frames) == TEXT
    return elapsed


@pytest.mark.slow
async def test_a_thousand_concurrent_streams(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    app = await app_factory(make_settings(max_concurrency=2 * STREAMS, max_connections=2 * STREAMS))
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=60, limits=limits
    ) as http:
        baseline_tasks = len(asyncio.all_tasks())
        warm = await _round(http, upstream)  # first round: imports, pools, caches fill up
        await asyncio.sleep(1.5)  # producers finish draining their upstreams
        gc.collect()
        idle = rss()
        second = await _round(http, upstream)
        await asyncio.sleep(1.5)
        upstream.script.received.clear()  # the fixture's records are test bookkeeping, not gateway memory
        gc.collect()
        after = rss()
        lifecycle = app.state.gateway.lifecycle
        growth = (after - idle) / 2**20
        print(f"\nsoak: {STREAMS} streams, {warm:.1f}s then {second:.1f}s, RSS {idle / 2**20:.0f} MiB +{growth:.1f}")
        assert lifecycle.inflight == 0
        assert busy_connections(app) == 0
        assert len(asyncio.all_tasks()) <= baseline_tasks
        assert after - idle < MAX_GROWTH, f"RSS grew by {growth:.1f} MiB over {STREAMS} streams"
