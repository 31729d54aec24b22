"""A real `messages-bridge serve --config` process: it serves the routing file and SIGHUP reloads it (slow)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream
from tests.processes import clean_env, gateway_process, wait_for
from tests.routing.conftest import HELLO, only, two_upstreams

pytestmark = pytest.mark.slow


def routes_to(fakes: dict[str, FakeUpstream], name: str) -> str:
    return two_upstreams(fakes, routes=only(name, "claude-*"), keys=("${KEY_A}", "${KEY_B}"))


def test_serve_with_a_routing_file_and_reload_it_on_sighup(fakes: dict[str, FakeUpstream], tmp_path: Path) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(routes_to(fakes, "a"))
    env = clean_env(KEY_A="key-a-secret-000000001", KEY_B="key-b-secret-000000002")
    log = tmp_path / "gateway.log"
    with (
        gateway_process(env, log, "--config", str(config)) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10) as http,
    ):
        assert http.post("/v1/messages", json=HELLO).status_code == 200
        assert len(fakes["a"].requests) == 1
        assert fakes["a"].script.received[0].headers["authorization"] == "Bearer key-a-secret-000000001"
        config.write_text(routes_to(fakes, "b"))
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "routing file reloaded" in log.read_text())
        assert http.post("/v1/messages", json=HELLO).status_code == 200
        assert len(fakes["b"].requests) == 1
        config.write_text("upstreams: [broken")
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "not reloaded" in log.read_text())
        assert http.post("/v1/messages", json=HELLO).status_code == 200
        assert len(fakes["b"].requests) == 2
        assert gateway.proc.poll() is None  # SIGHUP never stops the gateway
    text = log.read_text()
    assert "key-a-secret" not in text and "key-b-secret" not in text
