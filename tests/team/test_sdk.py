"""The official anthropic SDK against per-key limits: it reads each limit's 429 headers and waits them out."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.team.db import Database, make_engine, upgrade
from messages_bridge.team.keys import KeyStore, Limits
from messages_bridge.team.settings import TeamSettings
from tests.conftest import FakeUpstream
from tests.observability.helpers import canary_reply
from tests.servers import serving

pytestmark = pytest.mark.slow
ASK: list[Any] = [{"role": "user", "content": "hello"}]


def _keys(settings: TeamSettings, **keys: Limits) -> dict[str, str]:
    engine = make_engine(settings)
    upgrade(engine)
    try:
        return {name: KeyStore(Database(engine=engine)).create(name, limits) for name, limits in keys.items()}
    finally:
        engine.dispose()


def test_the_sdk_reads_each_limits_429_headers(
    make_settings: Callable[..., Settings], tmp_path: Path, upstream: FakeUpstream
) -> None:
    team = TeamSettings(data_dir=tmp_path)
    secrets = _keys(team, rpm=Limits(rpm=1), tpm=Limits(tpm=10), busy=Limits(max_concurrency=1))
    with serving(create_app(make_settings(), team=team)) as server, contextlib.ExitStack() as clients:
        # Each client closed at the end: an SDK client left to the garbage collector leaks its socket.
        client = clients.enter_context(anthropic.Anthropic(base_url=server.url, api_key=secrets["rpm"], max_retries=0))
        client.messages.create(model="claude-sonnet-5", max_tokens=16, messages=ASK)
        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model="claude-sonnet-5", max_tokens=16, messages=ASK)
        headers = limited.value.response.headers
        assert headers["anthropic-ratelimit-requests-limit"] == "1"
        assert headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert 1 <= int(headers["retry-after"]) <= 60
        assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]

        tpm = clients.enter_context(anthropic.Anthropic(base_url=server.url, api_key=secrets["tpm"], max_retries=0))
        long_ask: list[Any] = [{"role": "user", "content": "many words " * 50}]
        with pytest.raises(anthropic.RateLimitError) as over:
            tpm.messages.create(model="claude-sonnet-5", max_tokens=16, messages=long_ask)
        assert over.value.response.headers["anthropic-ratelimit-tokens-limit"] == "10"
        assert over.value.response.headers["anthropic-ratelimit-tokens-remaining"] == "10"
        assert over.value.response.headers["x-should-retry"] == "false", "larger than the limit itself: never fits"

        upstream.script.push(Reply(json_body=canary_reply(), hang=1.5))
        seen = len(upstream.script.received)
        busy = clients.enter_context(anthropic.Anthropic(base_url=server.url, api_key=secrets["busy"], max_retries=0))
        first = threading.Thread(
            target=busy.messages.create, kwargs={"model": "claude-sonnet-5", "max_tokens": 16, "messages": ASK}
        )
        first.start()
        _wait_until(lambda: len(upstream.script.received) > seen)  # the slow call holds the key's one slot
        with pytest.raises(anthropic.RateLimitError) as concurrent:
            busy.messages.create(model="claude-sonnet-5", max_tokens=16, messages=ASK)
        assert concurrent.value.response.headers["retry-after"] == "1"
        first.join(timeout=30)


def test_the_sdk_retry_waits_out_a_concurrency_429(
    make_settings: Callable[..., Settings], tmp_path: Path, upstream: FakeUpstream
) -> None:
    team = TeamSettings(data_dir=tmp_path)
    secrets = _keys(team, solo=Limits(max_concurrency=1))
    upstream.script.push(Reply(json_body=canary_reply(), hang=1.2))
    with (
        serving(create_app(make_settings(), team=team)) as server,
        anthropic.Anthropic(base_url=server.url, api_key=secrets["solo"], max_retries=4) as client,
    ):
        first = threading.Thread(
            target=client.messages.create, kwargs={"model": "claude-sonnet-5", "max_tokens": 16, "messages": ASK}
        )
        first.start()
        _wait_until(lambda: bool(upstream.script.received))
        raw = client.messages.with_raw_response.create(model="claude-sonnet-5", max_tokens=16, messages=ASK)
        assert raw.http_response.status_code == 200
        assert raw.retries_taken >= 1, "the first attempt met the busy key and the SDK retried after retry-after"
        first.join(timeout=30)


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
