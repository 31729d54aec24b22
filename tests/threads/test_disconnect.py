"""A client that goes away mid-stream (real HTTP): nothing is stored, the lease is freed, the head stays."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import FakeUpstream
from tests.reliability.faults import ok_response
from tests.threads.helpers import BETA, continue_, create, error_code, tool_results
from tests.threads.sdk_gateway import KEY, sdk_gateway


def slow_stream() -> Reply:
    data = encode_sse(events_for(ok_response("one slow piece after another " * 8), chunk=4))
    size = -(-len(data) // 20)
    return Reply(chunks=[data[i : i + size] for i in range(0, len(data), size)], delay=0.1)


def test_a_stream_cut_by_the_client_stores_nothing(
    make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    headers = {**BETA, "x-api-key": KEY}
    with (
        sdk_gateway(make_settings(api_keys=KEY)) as gateway,
        httpx.Client(base_url=gateway.url, headers=headers) as http,
    ):
        first = http.post("/v1/messages", json=create()).json()
        upstream.script.push(slow_stream())
        body = continue_(first["id"], tool_results(first), stream=True)
        with http.stream("POST", "/v1/messages", json=body) as cut:
            assert cut.status_code == 200
            for line in cut.iter_lines():
                if line.startswith("event: content_block_delta"):
                    break  # the client goes away mid-reply
        for _ in range(500):  # until the gateway has noticed the disconnect and freed the lease (bounded)
            again = http.post("/v1/messages", json=body)
            if again.status_code != 400 or error_code(again) != "thread_continue_in_flight":
                break
            time.sleep(0.01)
        assert again.status_code == 200, again.text  # the head was still `first`, and free
        replay = http.post("/v1/messages", json=continue_(first["id"], tool_results(first)))
        assert error_code(replay) == "thread_already_continued"
        assert len(gateway.recorder.store) == 1  # only the completed continuation is held
