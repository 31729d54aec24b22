"""Clients that misbehave: dropping mid-body is a quiet 499 (not a 500 with ERROR lines)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from tests.observability.helpers import LogCapture, capture_logs
from tests.reliability.faults import wait_until
from tests.servers import ThreadedServer

__all__ = ["capture_logs"]
PATHS = ("/v1/messages", "/v1/messages/count_tokens")


async def _drop_mid_body(port: int, path: str) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nhost: gateway.test\r\ncontent-type: application/json\r\n"
    writer.write(f"{head}content-length: 100000\r\n\r\n".encode() + b'{"model": "claude-sonnet-4-5", "messages": [')
    await writer.drain()
    await asyncio.sleep(0.05)  # let the gateway start reading the body
    writer.close()
    await writer.wait_closed()


async def test_a_client_dropping_mid_body_is_a_quiet_499(
    make_settings: Callable[..., Settings], capture_logs: Callable[[Settings], LogCapture]
) -> None:
    settings = make_settings(log_level="debug")
    server = ThreadedServer(create_app(settings))
    logs = capture_logs(settings)  # after uvicorn's Config, which installs its own handlers
    server.start()
    try:
        for path in PATHS:
            await _drop_mid_body(server.port, path)
        await wait_until(lambda: len(logs.access()) == len(PATHS))
    finally:
        server.stop()
    assert [r for r in logs.records() if r["level"] in ("error", "critical")] == []
    for record in logs.access():
        assert record["status"] == 499 and record["disconnected"] is True, record
        assert record["error_type"] is None
