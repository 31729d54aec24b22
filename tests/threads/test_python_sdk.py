"""The Python SDK (`anthropic` 2.x) with default settings against the gateway: its tool runner threads by default.

20 tool turns, streaming and not, threads on and off; then each thread rejection produced by the situation that
causes it, and the SDK's documented reaction to it (replay, unthread, or raise) observed on the wire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types.thread_fingerprint_mismatch_error import ThreadFingerprintMismatchError
from anthropic.types.thread_unsupported_request_error import ThreadUnsupportedRequestError

from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.threads.helpers import MODEL, Clock, on_clock
from tests.threads.python_sdk import run
from tests.threads.sdk_gateway import (
    ANSWER,
    KEY,
    TURNS,
    SdkGateway,
    check_threaded_loop,
    check_unthreaded_loop,
    replayed_after,
)


def sdk(gateway: SdkGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_runner_threads_20_turns(start: Callable[..., SdkGateway], stream: bool) -> None:
    gateway = start()
    with sdk(gateway) as client:
        assert run(client, stream=stream) == ANSWER
    check_threaded_loop(gateway.exchanges, TURNS)


@pytest.mark.parametrize("stream", [False, True])
def test_with_threads_off_the_tool_runner_still_finishes(start: Callable[..., SdkGateway], stream: bool) -> None:
    gateway = start(threads=False)
    with sdk(gateway) as client:
        assert run(client, stream=stream) == ANSWER
    check_unthreaded_loop(gateway.exchanges, TURNS)


def test_an_expired_thread_is_replayed(start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    clock = Clock()
    on_clock(gateway.recorder.threads, clock)
    seen: list[str] = []

    def idle_after_the_third(message: Any) -> None:
        seen.append(message.id)
        if len(seen) == 3:
            clock.now += 301  # more than five minutes pass before the next turn

    with sdk(gateway) as client:
        assert run(client, stream=False, each=idle_after_the_third) == ANSWER
    replayed_after(gateway, "thread_not_found")


def test_a_reply_continued_by_someone_else_is_replayed(start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    seen: list[str] = []

    def continue_it_first(message: Any) -> None:
        seen.append(message.id)
        if len(seen) == 3:
            tool = next(b for b in message.content if b.type == "tool_use")
            body = {
                "model": MODEL,
                "max_tokens": 64,
                "thread": {"type": "continue", "previous_message_id": message.id},
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "from elsewhere"}],
                    }
                ],
            }
            assert httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": KEY}).status_code == 200

    with sdk(gateway) as client:
        assert run(client, stream=True, each=continue_it_first) == ANSWER
    exchanges = [e for e in gateway.exchanges if e.headers.get("x-stainless-helper")]  # the SDK's own requests
    gateway.recorder.exchanges[:] = exchanges
    replayed_after(gateway, "thread_already_continued")


def test_a_continue_while_another_runs_is_replayed(start: Callable[..., SdkGateway], upstream: FakeUpstream) -> None:
    gateway = start()
    seen: list[str] = []
    held: list[threading.Thread] = []
    release = asyncio.Event()  # the held continue hangs until the runner is done

    def hold_a_continue(message: Any) -> None:
        seen.append(message.id)
        if len(seen) != 3:
            return
        tool = next(b for b in message.content if b.type == "tool_use")
        body = {
            "model": MODEL,
            "max_tokens": 64,
            "stream": True,
            "thread": {"type": "continue", "previous_message_id": message.id},
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "slow"}]}
            ],
        }
        upstream.script.push(Reply(hang=30.0, until=release, status=503, json_body={"error": {"message": "slow"}}))
        before = len(upstream.requests)
        other = threading.Thread(
            target=lambda: httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=30)
        )
        other.start()
        held.append(other)
        for _ in range(1000):  # until the held continue is waiting on the upstream
            if len(upstream.requests) > before:
                break
            threading.Event().wait(0.01)
        assert len(upstream.requests) > before

    with sdk(gateway) as client:
        assert run(client, stream=False, each=hold_a_continue) == ANSWER
    upstream.release(release)
    for other in held:
        other.join(timeout=30)
    gateway.recorder.exchanges[:] = [e for e in gateway.exchanges if e.headers.get("x-stainless-helper")]
    replayed_after(gateway, "thread_continue_in_flight")


def test_a_changed_fixed_field_raises(start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    with sdk(gateway) as client:
        thread = client.beta.messages.thread(model=MODEL, max_tokens=64, output_config={"effort": "low"})
        thread.send({"role": "user", "content": "Hello"})
        with pytest.raises(ThreadFingerprintMismatchError) as raised:
            # The SDK refuses a changed `output_config` itself; `extra_body` gets one past it to the server.
            thread.send({"role": "user", "content": "Again"}, extra_body={"output_config": {"effort": "high"}})
    assert raised.value.status_code == 400
    assert [e.status for e in gateway.exchanges] == [200, 400]  # thrown, not replayed


def test_the_explicit_thread_helper_raises_when_threads_are_off(start: Callable[..., SdkGateway]) -> None:
    gateway = start(threads=False)
    with sdk(gateway) as client:
        thread = client.beta.messages.thread(model=MODEL, max_tokens=64)
        with pytest.raises(ThreadUnsupportedRequestError):
            thread.send({"role": "user", "content": "Hello"})
    assert [e.error_code for e in gateway.exchanges] == ["thread_unsupported_request"]
