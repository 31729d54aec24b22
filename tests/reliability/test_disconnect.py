"""A client that goes away cancels its upstream request at once, in every phase, leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.reliability.faults import (
    MESSAGE,
    RawUpstream,
    assert_released,
    raw_upstream,
    read_request,
    start_call,
    wait_peer_close,
    wait_until,
)

AppFactory = Callable[[Settings], Any]
BODY = json.dumps(MESSAGE).encode()


async def test_disconnect_while_waiting_for_the_upstream_closes_the_upstream_request(
    app_factory: AppFactory, make_settings: Callable[..., Settings]
) -> None:
    holder: list[RawUpstream] = []
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        received.set()
        await wait_peer_close(holder[0], reader)

    async with raw_upstream(silent) as upstream:
        holder.append(upstream)
        app = await app_factory(make_settings(openai_base_url=upstream.base_url, read_timeout=30))
        baseline = asyncio.all_tasks()
        call, task = start_call(app, BODY)
        await asyncio.wait_for(received.wait(), 5)
        gone_at = time.monotonic()
        call.gone.set()
        await asyncio.wait_for(task, 0.5)
        await wait_until(lambda: bool(upstream.peer_closed_at), 0.5)
        assert upstream.peer_closed_at[0] - gone_at < 0.3
        assert call.status is None  # nobody to answer
        await assert_released(app, baseline)
        assert app.state.gateway.lifecycle.inflight == 0


async def test_disconnect_during_a_retry_wait_stops_the_retries(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    upstream.script.push(Reply(status=503, json_body={"error": {"message": "busy"}}, headers={"retry-after": "1"}))
    app = await app_factory(make_settings(max_retries=2, max_retry_wait=2.0))
    baseline = asyncio.all_tasks()
    call, task = start_call(app, BODY)
    await wait_until(lambda: len(upstream.requests) == 1)
    await asyncio.sleep(0.2)  # inside the 1 s retry wait
    call.gone.set()
    await asyncio.wait_for(task, 0.3)
    await asyncio.sleep(1.2)  # past the moment the retry would have gone out
    assert len(upstream.requests) == 1
    await assert_released(app, baseline)


async def test_a_client_that_stays_gets_its_answer(
    app_factory: AppFactory, make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    """The watcher must not cancel a request whose client is still there (control for the tests above)."""
    app = await app_factory(make_settings())
    baseline = asyncio.all_tasks()
    call, task = start_call(app, BODY)
    await asyncio.wait_for(task, 5)
    assert call.status == 200 and json.loads(call.body)["type"] == "message"
    call.gone.set()  # the server reports a disconnect after the response: harmless
    await assert_released(app, baseline)
