"""The Python SDK (`anthropic` 2.x) with default settings against the gateway: its tool runner threads by default.

20 tool turns, streaming and not, threads on and off; then each thread rejection produced by the situation that
causes it, and the SDK's documented reaction to it (replay, unthread, or raise) observed on the wire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import beta_tool
from anthropic.lib.streaming import BetaMessageStream
from anthropic.types.thread_fingerprint_mismatch_error import ThreadFingerprintMismatchError
from anthropic.types.thread_unsupported_request_error import ThreadUnsupportedRequestError

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.threads.helpers import MODEL
from tests.threads.sdk_gateway import KEY, SdkGateway, check_threaded_loop, check_unthreaded_loop, sdk_gateway

TURNS = 20
PROMPT = f"Please call `step` {TURNS} times"
ANSWER = f"The tool returned {TURNS} results: " + ", ".join(f"r{n}" for n in range(1, TURNS + 1))


@beta_tool
def step(n: int) -> str:
    """Take step number n.

    Args:
        n: the step number.
    """
    return f"r{n}"


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., SdkGateway]]:
    opened: list[Any] = []

    def open_(**overrides: Any) -> SdkGateway:
        context = sdk_gateway(make_settings(api_keys=KEY, **overrides))
        opened.append(context)
        return context.__enter__()

    yield open_
    for context in reversed(opened):
        context.__exit__(None, None, None)


def sdk(gateway: SdkGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)


def run(client: anthropic.Anthropic, *, stream: bool, each: Callable[[Any], None] | None = None) -> str:
    """The tool runner with default settings to the end; `each(message)` runs after every assistant message."""
    runner = client.beta.messages.tool_runner(
        model=MODEL,
        max_tokens=256,
        system="Be terse.",
        tools=[step],
        stream=stream,
        messages=[{"role": "user", "content": PROMPT}],
    )
    for item in runner:
        message = item.get_final_message() if isinstance(item, BetaMessageStream) else item
        if each is not None:
            each(message)
    final = runner.until_done()
    text = final.content[0]
    assert text.type == "text"
    return text.text


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


def replayed_after(gateway: SdkGateway, code: str) -> None:
    """One rejection with `code`, then a create resending the whole conversation, then continues again."""
    exchanges = gateway.exchanges
    rejected = [i for i, e in enumerate(exchanges) if e.status != 200]
    assert len(rejected) == 1, [(e.status, e.error_code) for e in exchanges]
    i = rejected[0]
    assert exchanges[i].error_code == code
    replay = exchanges[i + 1]
    assert replay.thread == {"type": "create"}
    assert len(replay.body["messages"]) == 1 + 2 * i  # the prompt, then i replies and i tool results
    assert all(e.thread is not None and e.thread["type"] == "continue" for e in exchanges[i + 2 :])


def test_an_expired_thread_is_replayed(start: Callable[..., SdkGateway]) -> None:
    gateway = start()
    store = gateway.recorder.store
    now = [1000.0]
    store._clock = lambda: now[0]
    seen: list[str] = []

    def idle_after_the_third(message: Any) -> None:
        seen.append(message.id)
        if len(seen) == 3:
            now[0] += 301  # more than five minutes pass before the next turn

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
