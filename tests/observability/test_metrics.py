"""`/metrics` after a scripted mix of requests: counts, token sums, errors, retries; multi-process aggregation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.observability.metrics import model_label_for
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import canary_reply, scrape

P = "messages_bridge_"
SONNET = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HAIKU = {**SONNET, "model": "claude-haiku-4-5"}


def _delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_scripted_mix_shows_expected_counts_and_token_sums(
    app_factory: Callable[[Settings], Any], make_settings: Callable[..., Settings], upstream: FakeUpstream
) -> None:
    app = await app_factory(make_settings(max_retries=1, max_retry_wait=0.05))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        before = scrape((await http.get("/metrics")).text)
        upstream.script.push(Reply(json_body=canary_reply()), Reply(json_body=canary_reply()))
        upstream.script.push(Reply(json_body=canary_reply(input_tokens=50, cached=0, output_tokens=5, reasoning=0)))
        assert (await http.post("/v1/messages", json=SONNET)).status_code == 200
        assert (await http.post("/v1/messages", json=SONNET)).status_code == 200
        assert (await http.post("/v1/messages", json=HAIKU)).status_code == 200
        limited = {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
        upstream.script.push(Reply(status=429, json_body=limited), Reply(status=429, json_body=limited))
        assert (await http.post("/v1/messages", json=SONNET)).status_code == 429
        assert (await http.post("/v1/messages", json={**SONNET, "max_tokens": "x"})).status_code == 400
        count = {k: v for k, v in SONNET.items() if k != "max_tokens"}
        assert (await http.post("/v1/messages/count_tokens", json=count)).status_code == 200
        after = scrape((await http.get("/metrics")).text)

    def d(name: str, **labels: str) -> float:
        return _delta(before, after, P + name, **labels)

    route = "/v1/messages"
    assert d("requests_total", route=route, status="200", model="sonnet") == 2
    assert d("requests_total", route=route, status="200", model="haiku") == 1
    assert d("requests_total", route=route, status="429", model="sonnet") == 1
    assert d("requests_total", route=route, status="400", model="none") == 1
    assert d("requests_total", route=route + "/count_tokens", status="200", model="sonnet") == 1
    assert d("request_duration_seconds_count", route=route, status="200", model="sonnet") == 2
    # canary_reply: 120 input of which 20 cached → 100 uncached; 30 output of which 10 reasoning.
    assert d("tokens_total", direction="input", kind="uncached", model="sonnet") == 200
    assert d("tokens_total", direction="input", kind="cache_read", model="sonnet") == 40
    assert d("tokens_total", direction="output", kind="visible", model="sonnet") == 40
    assert d("tokens_total", direction="output", kind="reasoning", model="sonnet") == 20
    assert d("tokens_total", direction="input", kind="uncached", model="haiku") == 50
    assert d("tokens_total", direction="output", kind="visible", model="haiku") == 5
    assert d("upstream_errors_total", error_type="rate_limit_error") == 1
    assert d("upstream_retries_total") == 1
    assert d("upstream_duration_seconds_count", model="sonnet") == 4  # 2 ok, the 429, count_tokens
    assert after[(P + "active_streams", ())] == 0


def test_model_labels_stay_low_cardinality(make_settings: Callable[..., Settings]) -> None:
    label = model_label_for(make_settings(model_map='{"my-alias": "gpt-5"}'))
    assert [label(m) for m in ("my-alias", "claude-opus-4-8", "CLAUDE-HAIKU", "gpt-4o", "x" * 500, None)] == [
        "my-alias",
        "opus",
        "haiku",
        "other",
        "other",
        "none",
    ]


_WORKER = """
import sys
from messages_bridge.config import Settings
from messages_bridge.observability.metrics import Metrics
from messages_bridge.observability.record import RequestRecord
record = RequestRecord(route="/v1/messages", status=200, model="claude-opus-4-8", input_tokens=int(sys.argv[1]))
Metrics(Settings()).observe(record, record.started + 0.01)
"""
_SCRAPE = "from messages_bridge.observability.metrics import exposition; print(exposition()[0].decode())"


@pytest.mark.slow  # three Python processes
def test_multiprocess_mode_aggregates_workers(tmp_path: Path) -> None:
    """Two 'workers' write to PROMETHEUS_MULTIPROC_DIR; one scrape sees the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for tokens in ("7", "11"):
        subprocess.run([sys.executable, "-c", _WORKER, tokens], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", _SCRAPE], env=env, check=True, timeout=60, capture_output=True)
    samples = scrape(out.stdout.decode())
    labels = (("route", "/v1/messages"), ("status", "200"), ("model", "opus"))
    assert samples[(P + "requests_total", tuple(sorted(labels)))] == 2
    token_labels = (("direction", "input"), ("kind", "uncached"), ("model", "opus"))
    assert samples[(P + "tokens_total", tuple(sorted(token_labels)))] == 18
