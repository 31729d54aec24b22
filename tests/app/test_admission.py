"""Admission control and lifecycle: the concurrency bound, draining on shutdown, /readyz, signals."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx

from messages_bridge.app.factory import create_app
from messages_bridge.app.lifecycle import Lifecycle, install_drain_on_signal
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.reliability.faults import MESSAGE, ok_response, wait_until

AppFactory = Callable[[Settings], Any]


async def test_requests_beyond_the_bound_get_529_and_never_reach_the_upstream(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    upstream.script.push(*[Reply(hang=0.6, json_body=ok_response())] * 2)
    app = await app_factory(make_settings(max_concurrency=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        slow = [asyncio.create_task(http.post("/v1/messages", json=MESSAGE)) for _ in range(2)]
        await wait_until(lambda: len(upstream.requests) == 2)
        refused = await http.post("/v1/messages", json=MESSAGE)
        counted = await http.post("/v1/messages/count_tokens", json={"model": "x", "messages": MESSAGE["messages"]})
        assert refused.status_code == 529 and counted.status_code == 529
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert refused.json()["request_id"] == refused.headers["request-id"]
        assert refused.headers["retry-after"] == "1"
        assert (await http.get("/v1/models")).status_code == 200  # only upstream routes are bounded
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
        assert len(upstream.requests) == 2
        assert (await http.post("/v1/messages", json=MESSAGE)).status_code == 200  # slots came back
    assert app.state.gateway.lifecycle.inflight == 0


async def test_draining_refuses_new_work_and_turns_unready(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    app = await app_factory(make_settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        assert (await http.get("/readyz")).status_code == 200
        before = _refusals((await http.get("/metrics")).text)
        app.state.gateway.lifecycle.begin_drain()
        refused = await http.post("/v1/messages", json=MESSAGE)
        assert refused.status_code == 529 and refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["type"] == "overloaded_error"
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "draining"
        assert (await http.get("/healthz")).status_code == 200  # alive, just not taking work
        metrics = (await http.get("/metrics")).text
    assert upstream.requests == []
    assert _refusals(metrics) == before + 1  # refused before routing, yet counted under its route


def _refusals(metrics: str) -> float:
    """529s counted under the /v1/messages route (the registry is process-wide: compare before and after)."""
    line = 'messages_bridge_requests_total{model="none",route="/v1/messages",status="529"} '
    return next((float(x[len(line) :]) for x in metrics.splitlines() if x.startswith(line)), 0.0)


async def test_lifespan_shutdown_lets_open_requests_finish(
    make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(hang=0.5, json_body=ok_response("finished")))
    app = create_app(make_settings(shutdown_grace=5.0))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        open_request = asyncio.create_task(http.post("/v1/messages", json=MESSAGE))
        await wait_until(lambda: len(upstream.requests) == 1)
        shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await asyncio.sleep(0.05)
        assert (await http.post("/v1/messages", json=MESSAGE)).status_code == 529
        assert not shutdown.done()  # still waiting for the open request
        reply = await open_request
        assert reply.status_code == 200 and reply.json()["content"][0]["text"] == "finished"
        await asyncio.wait_for(shutdown, 2)


async def test_lifespan_shutdown_gives_up_after_the_grace_period(
    make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(hang=5.0, json_body=ok_response()))
    app = create_app(make_settings(shutdown_grace=0.3))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        open_request = asyncio.create_task(http.post("/v1/messages", json=MESSAGE))
        await wait_until(lambda: len(upstream.requests) == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(lifespan.__aexit__(None, None, None), 2)
        assert 0.25 <= loop.time() - started < 1.0
        reply = await open_request  # the upstream client closed under it: an error, not a hang
        assert reply.status_code >= 500 and reply.json()["type"] == "error"


async def test_first_signal_drains_and_hands_over_when_idle_second_stops_at_once() -> None:
    calls: list[int] = []

    def server_handler(sig: int, frame: FrameType | None) -> None:
        calls.append(sig)

    previous = signal.signal(signal.SIGTERM, server_handler)
    lifecycle = Lifecycle(max_concurrency=10, grace=5.0)
    undo = install_drain_on_signal(lifecycle)
    try:
        lifecycle.enter()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(lambda: lifecycle.draining)
        await asyncio.sleep(0.2)
        assert calls == []  # a request is still in flight: the server keeps running
        lifecycle.leave()
        await wait_until(lambda: calls == [signal.SIGTERM], within=1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(lambda: len(calls) == 2, within=1.0)
    finally:
        undo()
        signal.signal(signal.SIGTERM, previous)
    assert signal.getsignal(signal.SIGTERM) is previous


async def test_signal_hand_over_happens_after_the_grace_period_even_if_busy() -> None:
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: calls.append(sig))
    lifecycle = Lifecycle(max_concurrency=10, grace=0.3)
    undo = install_drain_on_signal(lifecycle)
    try:
        for _ in range(3):
            lifecycle.enter()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert lifecycle.draining and calls == []
        await wait_until(lambda: calls == [signal.SIGTERM], within=1.0)
    finally:
        undo()
        signal.signal(signal.SIGTERM, previous)


async def test_wait_idle_wakes_when_the_last_request_leaves_and_gives_up_after_its_time() -> None:
    lifecycle = Lifecycle(max_concurrency=10, grace=5.0)
    assert await lifecycle.wait_idle(0)  # nothing in flight: idle at once
    lifecycle.enter()
    lifecycle.enter()
    assert not await lifecycle.wait_idle(0.05)
    waiter = asyncio.create_task(lifecycle.wait_idle(5.0))
    lifecycle.leave()
    await asyncio.sleep(0)
    assert not waiter.done()  # one request is still in flight
    lifecycle.leave()
    for _ in range(3):  # a few loop turns, no clock: a poll would still be asleep
        await asyncio.sleep(0)
    assert waiter.done() and waiter.result() is True
