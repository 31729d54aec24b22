"""Graceful shutdown of a real `messages-bridge serve` process.

On SIGTERM the open stream finishes, `/readyz` answers 503, a new request gets 529 `overloaded_error` with
`retry-after`, and the process then exits on its own — no second signal, well within the grace period.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.cli import FINAL_SHUTDOWN_WAIT
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply, Script, create_upstream_app
from tests.processes import GatewayProcess, clean_env, gateway_process
from tests.reliability.faults import MESSAGE, ok_response
from tests.servers import serving

pytestmark = pytest.mark.slow

TEXT = "Draining lets this answer reach the client in full, one slow piece after another, before the gateway exits."
# The stream lasts about PIECES * DELAY = 4 s: longer than uvicorn's own graceful wait (cli.FINAL_SHUTDOWN_WAIT),
# so only the app's drain can let it finish.
PIECES = 16
DELAY = 0.25
SETTLE = 0.5  # after the signal: without the drain, uvicorn would have closed its listener by then (0.1 s ticks)
EXIT_WITHIN = 15.0


def slow_stream() -> Reply:
    """The Responses SSE stream of TEXT, cut into PIECES chunks sent DELAY seconds apart."""
    assert (PIECES - 2) * DELAY > FINAL_SHUTDOWN_WAIT + SETTLE
    data = encode_sse(events_for(ok_response(TEXT), chunk=4))
    size = -(-len(data) // PIECES)
    return Reply(chunks=[data[i : i + size] for i in range(0, len(data), size)], delay=DELAY)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """The fake upstream in a thread and the gateway as a subprocess in its own process group."""
    script = Script()
    script.push(slow_stream())
    with serving(create_upstream_app(script)) as upstream:
        env = clean_env(
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=f"{upstream.url}/v1",
            BRIDGE_MAX_RETRIES="0",
            BRIDGE_DATA_DIR=str(tmp_path / "data"),
        )
        with gateway_process(env, tmp_path / "gateway.log", "--shutdown-grace", "10") as started:
            yield started


def frames(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_sigterm_drains_the_open_stream_refuses_new_work_and_exits(gateway: GatewayProcess) -> None:
    base, proc, log = gateway
    # One client: the open stream holds one pooled connection, the other requests take another.
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(10, connect=2)) as http,
        http.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as stream,
    ):
        assert stream.status_code == 200
        chunks = stream.iter_raw()
        received = [next(chunks)]  # the first bytes are out: the stream is in flight
        assert b"message_stop" not in received[0]
        os.kill(proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(SETTLE)

        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "draining"
        refused = http.post("/v1/messages", json=MESSAGE)
        assert refused.status_code == 529
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "overloaded_error"
        assert proc.poll() is None, "the gateway exited while a stream was still open"

        received.extend(chunks)
    events = frames(b"".join(received))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "error" not in names
    text = "".join(p["delta"]["text"] for n, p in events if n == "content_block_delta")
    assert text == TEXT

    code = proc.wait(timeout=EXIT_WITHIN)
    assert time.monotonic() - signalled < EXIT_WITHIN
    # After a graceful shutdown uvicorn re-raises the signal it caught (Server.capture_signals), so the process
    # ends "by SIGTERM" as supervisors expect; the log shows it got there through the lifespan shutdown.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()
