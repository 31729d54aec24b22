"""Canary: unique markers in every place content can hide (and the keys) never reach logs, metrics or errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.observability.helpers import (
    CLIENT_KEY,
    MARKERS,
    WRONG_KEY,
    LogCapture,
    canary_reply,
    canary_request,
    leaks,
)

AUTH = {"x-api-key": CLIENT_KEY}


async def _gateway(app_factory: Callable[[Settings], Any], settings: Settings) -> httpx.AsyncClient:
    app = await app_factory(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)


async def _exercise(http: httpx.AsyncClient, upstream: FakeUpstream) -> list[httpx.Response]:
    """Every non-streaming route and failure, each carrying the canary; returns the responses."""
    body = canary_request()
    upstream.script.push(Reply(json_body=canary_reply(), headers={"x-request-id": "req_upstream_canary_1"}))
    ok = await http.post("/v1/messages", json=body, headers=AUTH)
    assert ok.status_code == 200, ok.text
    # The markers really flowed through the gateway (so their absence from the logs means something).
    assert MARKERS["reply_text"] in ok.text and MARKERS["reply_args"] in ok.text
    assert MARKERS["text"] in json.dumps(upstream.requests[-1])
    count_body = {k: v for k, v in body.items() if k not in ("max_tokens", "metadata")}
    responses = [ok, await http.post("/v1/messages/count_tokens", json=count_body, headers=AUTH)]
    error = {"error": {"message": "upstream says no", "type": "requests", "code": "rate_limit_exceeded"}}
    boom = {"error": {"message": "boom"}}
    upstream.script.push(Reply(status=429, json_body=error), Reply(status=500, json_body=boom))
    responses.append(await http.post("/v1/messages", json=body, headers=AUTH))
    responses.append(await http.post("/v1/messages", json=body, headers=AUTH))
    invalid = [
        {**body, "max_tokens": MARKERS["text"]},
        {**body, "messages": [{"role": "user", "content": [{"type": "text", "text": 7, "x": MARKERS["text"]}]}]},
        {**body, "temperature": 7},
    ]
    for bad in invalid:
        responses.append(await http.post("/v1/messages", json=bad, headers=AUTH))
    broken = json.dumps(body)[:-40].encode()  # truncated JSON, the cut lands inside the content
    json_headers = {**AUTH, "content-type": "application/json"}
    responses.append(await http.post("/v1/messages", content=broken, headers=json_headers))
    responses.append(await http.post("/v1/messages", json=body, headers={"x-api-key": WRONG_KEY}))
    responses.append(await http.post("/v1/messages", json=body, headers={"authorization": f"Bearer {WRONG_KEY}"}))
    return responses


async def test_canary_never_reaches_logs_metrics_or_errors(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
    caplog: Any,
) -> None:
    for level in ("info", "debug"):
        settings = make_settings(api_keys=CLIENT_KEY, max_retries=0, log_level=level)
        logs = capture_logs(settings)
        caplog.clear()
        async with await _gateway(app_factory, settings) as http:
            responses = await _exercise(http, upstream)
            metrics = (await http.get("/metrics")).text
        statuses = [r.status_code for r in responses]
        assert statuses == [200, 200, 429, 500, 400, 400, 400, 400, 401, 401], statuses
        access = [r for r in logs.access() if r["route"] != "/metrics"]
        assert [r["status"] for r in access] == statuses  # one access record per request
        assert access[0]["blocks"] == {
            "system_text": 1,
            "text": 1,
            "image": 1,
            "document": 1,
            "thinking": 1,
            "tool_use": 1,
            "tool_result": 1,
        }
        assert leaks(logs.text) == [], level
        assert leaks(caplog.text) == [] and leaks(" ".join(str(r.__dict__) for r in caplog.records)) == []
        assert leaks(metrics) == []
        for response in responses[2:]:
            assert leaks(response.text) == [], response.text
            assert response.json()["request_id"] == response.headers["request-id"]


async def test_unmatched_paths_and_model_names_stay_out_of_labels_and_logs(
    client: httpx.AsyncClient, capture_logs: Callable[[Settings], LogCapture], make_settings: Callable[..., Settings]
) -> None:
    logs = capture_logs(make_settings())
    await client.get(f"/v1/{MARKERS['text']}")
    chosen = {"model": MARKERS["system"], "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    assert (await client.post("/v1/messages", json=chosen)).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert leaks(metrics) == []  # a client-chosen model name collapses to "other"
    assert 'model="other"' in metrics
    first, second = logs.access()[:2]
    assert (first["route"], first["status"]) == ("unmatched", 404)
    assert (second["route"], second["status"]) == ("/v1/messages", 200)
    assert MARKERS["text"] not in logs.text


async def test_content_logging_is_opt_in_and_still_masks_keys(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    upstream: FakeUpstream,
    capture_logs: Callable[[Settings], LogCapture],
) -> None:
    settings = make_settings(api_keys=CLIENT_KEY, log_content=True, log_level="debug")
    logs = capture_logs(settings)
    upstream.script.push(Reply(json_body=canary_reply()))
    body = canary_request(system=f"{MARKERS['system']} my key is {CLIENT_KEY}")
    async with await _gateway(app_factory, settings) as http:
        assert (await http.post("/v1/messages", json=body, headers=AUTH)).status_code == 200
    content = [r for r in logs.records() if r["logger"] == "messages_bridge.content"]
    assert len(content) == 1
    assert MARKERS["system"] in content[0]["request_body"] and MARKERS["reply_text"] in content[0]["response_body"]
    assert CLIENT_KEY not in logs.text and "***" in content[0]["request_body"]
