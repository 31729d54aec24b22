"""SIGHUP reloads the routing file atomically: zero failed requests under load, requests in flight finish on the
configuration they started with, a bad file keeps the old configuration and says why."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.observability.helpers import capture_logs
from tests.reliability.faults import ok_response
from tests.routing.conftest import HELLO, only, two_upstreams
from tests.streamkit import parse_sse

Make = Callable[..., Any]
__all__ = ["capture_logs"]


def to(fakes: dict[str, FakeUpstream], name: str) -> str:
    return two_upstreams(fakes, routes=only(name))


def replace(path: str, text: str) -> None:
    """Write then rename, as a deployment does: the reload never sees half a file."""
    temp = Path(path + ".new")
    temp.write_text(text)
    os.replace(temp, path)


async def hup_and_wait(gateway: Any, attribute: str, before: int) -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    async with asyncio.timeout(5):
        while getattr(gateway.app.state.reloader, attribute) == before:  # noqa: ASYNC110 - the handler runs on the loop
            await asyncio.sleep(0.005)


async def test_reload_under_load_fails_no_request(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(to(fakes, "a"))
    path = gateway.state.settings.config
    statuses: list[int] = []

    async def client(n: int) -> None:
        for i in range(25):
            body = HELLO | {"stream": i % 2 == 0, "metadata": {"user_id": f"u{n}"}}
            reply = await gateway.post(body)
            statuses.append(reply.status_code)
            if body["stream"]:
                assert parse_sse(reply.content)[-1][0] == "message_stop"

    async def reloader() -> None:
        for i in range(6):
            await asyncio.sleep(0.05)
            replace(path, to(fakes, "ab"[(i + 1) % 2]))
            await hup_and_wait(gateway, "reloads", i)

    await asyncio.gather(*(client(n) for n in range(8)), reloader())
    assert statuses == [200] * 200
    assert gateway.app.state.reloader.reloads == 6
    assert fakes["a"].requests and fakes["b"].requests  # both configurations served
    before = len(fakes["a"].requests)
    assert (await gateway.post()).status_code == 200  # the last file routes to `a`
    assert len(fakes["a"].requests) == before + 1


async def test_a_request_in_flight_finishes_on_its_configuration(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(to(fakes, "a"))
    data = encode_sse(events_for(ok_response("slow but complete"), chunk=3))
    fakes["a"].script.push(Reply(chunks=[data[i : i + 40] for i in range(0, len(data), 40)], delay=0.02))
    slow = asyncio.create_task(gateway.post(HELLO | {"stream": True}))
    async with asyncio.timeout(5):
        while not fakes["a"].requests:  # noqa: ASYNC110 - the upstream records it on another thread
            await asyncio.sleep(0.005)
    replace(gateway.state.settings.config, to(fakes, "b"))
    await hup_and_wait(gateway, "reloads", 0)
    assert (await gateway.post()).status_code == 200
    assert len(fakes["b"].requests) == 1
    events = parse_sse((await slow).content)
    assert events[-1][0] == "message_stop"
    assert len(fakes["a"].requests) == 1


async def test_a_bad_file_keeps_the_old_configuration_and_says_why(
    routed: Make, fakes: dict[str, FakeUpstream], capture_logs: Any
) -> None:
    gateway = await routed(to(fakes, "a"))
    logs = capture_logs(gateway.state.settings)
    router = gateway.state.router
    replace(gateway.state.settings.config, to(fakes, "a").replace("targets: [a/gpt-5]", "targets: [nowhere/gpt-5]"))
    await hup_and_wait(gateway, "failures", 0)
    assert gateway.state.router is router
    assert (await gateway.post()).status_code == 200
    assert len(fakes["a"].requests) == 1
    errors = [r for r in logs.records() if r["level"] == "error"]
    assert (
        "not reloaded" in errors[0]["event"] and "routes.0.targets.0: unknown upstream 'nowhere'" in errors[0]["event"]
    )


async def test_an_unchanged_upstream_keeps_its_breaker_and_benched_keys(
    routed: Make, fakes: dict[str, FakeUpstream]
) -> None:
    gateway = await routed(to(fakes, "a"))
    before = gateway.state.router.upstreams
    replace(gateway.state.settings.config, to(fakes, "b"))
    await hup_and_wait(gateway, "reloads", 0)
    after = gateway.state.router.upstreams
    assert after["a"] is before["a"] and after["b"] is before["b"]
    changed = to(fakes, "b").replace(fakes["b"].base_url, fakes["c"].base_url)  # `b` now points elsewhere
    replace(gateway.state.settings.config, changed)
    await hup_and_wait(gateway, "reloads", 1)
    assert gateway.state.router.upstreams["b"] is not before["b"]
    assert (await gateway.post()).status_code == 200
    assert len(fakes["c"].requests) == 1
