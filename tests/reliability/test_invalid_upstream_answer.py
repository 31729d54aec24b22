"""A 2xx upstream answer that is not a Responses object is the upstream's fault: 500 `api_error`, never a 4xx."""

from __future__ import annotations

import httpx
import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from tests.conftest import GATEWAY

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize("content", [b"<html>not json</html>", b'{"id": 1}', b""])
async def test_an_unreadable_answer_is_an_api_error(content: bytes) -> None:
    answer = httpx.Response(200, content=content, headers={"content-type": "application/json"})
    settings = Settings(openai_api_key="sk-x", openai_base_url="http://upstream.test/v1", max_retries=0)
    app = create_app(settings, transport=httpx.MockTransport(lambda _: answer))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)
    async with app.router.lifespan_context(app), http:
        reply = await http.post("/v1/messages", json=BODY)
    assert reply.status_code == 500, reply.text
    error = reply.json()["error"]
    assert error["type"] == "api_error"
    assert error["message"] == "Upstream request failed: its answer was not a valid Responses object"
