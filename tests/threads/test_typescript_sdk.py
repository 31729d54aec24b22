"""The TypeScript SDK (`@anthropic-ai/sdk` 1.x) with default settings against the gateway: its tool runner threads
by default. 20 tool turns, streaming and not, threads on and off; an expired thread and a reply continued by
someone else, each answered by the SDK's documented replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.threads.helpers import MODEL, Clock, on_clock
from tests.threads.sdk_gateway import (
    ANSWER,
    CONTROL_PATH,
    KEY,
    TURNS,
    SdkGateway,
    check_threaded_loop,
    check_unthreaded_loop,
    replayed_after,
)
from tests.threads.ts_sdk import ensure_installed, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdk_folder() -> Path:
    return ensure_installed()


def run(folder: Path, gateway: SdkGateway, *, stream: bool, disrupt: str = "none") -> str:
    env = {
        "BASE_URL": gateway.url,
        "API_KEY": KEY,
        "MODEL": MODEL,
        "TURNS": str(TURNS),
        "STREAM": "1" if stream else "0",
        "DISRUPT": disrupt,
        "CONTROL": gateway.url + CONTROL_PATH,
    }
    final: str = run_script(folder, env)["final"]
    return final


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_runner_threads_20_turns(sdk_folder: Path, start: Callable[..., SdkGateway], stream: bool) -> None:
    gateway = start()
    assert run(sdk_folder, gateway, stream=stream) == ANSWER
    check_threaded_loop(gateway.exchanges, TURNS)


@pytest.mark.parametrize("stream", [False, True])
def test_with_threads_off_the_tool_runner_still_finishes(
    sdk_folder: Path, start: Callable[..., SdkGateway], stream: bool
) -> None:
    gateway = start(threads=False)
    assert run(sdk_folder, gateway, stream=stream) == ANSWER
    check_unthreaded_loop(gateway.exchanges, TURNS)


def test_an_expired_thread_is_replayed(sdk_folder: Path, start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    clock = Clock()
    on_clock(gateway.recorder.threads, clock)

    async def idle(_: str) -> None:
        clock.now += 301

    gateway.recorder.on_control = idle
    assert run(sdk_folder, gateway, stream=True, disrupt="idle") == ANSWER
    replayed_after(gateway, "thread_not_found")


def test_a_continue_while_another_runs_is_replayed(
    sdk_folder: Path, start: Callable[..., SdkGateway], upstream: FakeUpstream
) -> None:
    gateway = start()
    seen = [0]

    async def control(action: str) -> None:
        if action == "slow":
            seen[0] = len(upstream.requests)
            upstream.script.push(Reply(hang=4.0, status=503, json_body={"error": {"message": "slow"}}))
        elif action == "wait":
            for _ in range(1000):  # until the held continue waits on the upstream (bounded)
                if len(upstream.requests) > seen[0]:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the held continue never reached the upstream")

    gateway.recorder.on_control = control
    assert run(sdk_folder, gateway, stream=True, disrupt="in_flight") == ANSWER
    gateway.recorder.exchanges[:] = [e for e in gateway.exchanges if e.headers.get("x-stainless-helper")]
    replayed_after(gateway, "thread_continue_in_flight")


def test_a_reply_continued_by_someone_else_is_replayed(sdk_folder: Path, start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    assert run(sdk_folder, gateway, stream=False, disrupt="continued") == ANSWER
    gateway.recorder.exchanges[:] = [e for e in gateway.exchanges if e.headers.get("x-stainless-helper")]
    replayed_after(gateway, "thread_already_continued")


@pytest.mark.parametrize(
    ("threads", "change", "raised", "statuses"),
    [
        (True, False, None, [200, 200]),
        (True, True, "ThreadFingerprintMismatchError", [200, 400]),  # thrown, not replayed
        (False, False, "ThreadUnsupportedRequestError", [400]),  # the explicit helper throws where a runner unthreads
    ],
)
def test_the_thread_helper_raises_what_it_documents(
    sdk_folder: Path,
    start: Callable[..., SdkGateway],
    threads: bool,
    change: bool,
    raised: str | None,
    statuses: list[int],
) -> None:
    gateway = start(threads=threads)
    env = {"MODE": "thread", "BASE_URL": gateway.url, "API_KEY": KEY, "MODEL": MODEL, "CHANGE": "1" if change else "0"}
    assert run_script(sdk_folder, env)["raised"] == raised
    assert [e.status for e in gateway.exchanges] == statuses
