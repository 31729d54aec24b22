"""A real `messages-bridge serve --config` process: it serves the routing file and SIGHUP reloads it (slow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream
from tests.routing.conftest import HELLO, only, two_upstreams
from tests.servers import free_port

pytestmark = pytest.mark.slow


def routes_to(fakes: dict[str, FakeUpstream], name: str) -> str:
    return two_upstreams(fakes, routes=only(name, "claude-*"), keys=("${KEY_A}", "${KEY_B}"))


def wait_for(predicate: object, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_serve_with_a_routing_file_and_reload_it_on_sighup(fakes: dict[str, FakeUpstream], tmp_path: Path) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(routes_to(fakes, "a"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OPENAI_"))}
    env |= {"KEY_A": "key-a-secret-000000001", "KEY_B": "key-b-secret-000000002"}
    log = tmp_path / "gateway.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "messages_bridge", "serve", "--port", str(port), "--config", str(config)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up)
            assert http.post("/v1/messages", json=HELLO).status_code == 200
            assert len(fakes["a"].requests) == 1
            assert fakes["a"].script.received[0].headers["authorization"] == "Bearer key-a-secret-000000001"
            config.write_text(routes_to(fakes, "b"))
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "routing file reloaded" in log.read_text())
            assert http.post("/v1/messages", json=HELLO).status_code == 200
            assert len(fakes["b"].requests) == 1
            config.write_text("upstreams: [broken")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "not reloaded" in log.read_text())
            assert http.post("/v1/messages", json=HELLO).status_code == 200
            assert len(fakes["b"].requests) == 2
            assert proc.poll() is None  # SIGHUP never stops the gateway
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    text = log.read_text()
    assert "key-a-secret" not in text and "key-b-secret" not in text
