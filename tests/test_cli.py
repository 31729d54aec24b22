"""The CLI: deployment safety checks, and `python -m messages_bridge serve` starting in demo mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.cli import DEMO_BANNER, check_deployment, main
from messages_bridge.config import Settings
from tests.servers import free_port

KEY: dict[str, Any] = {"openai_api_key": "sk-upstream"}


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path) -> Iterator[None]:
    """Settings read the environment: every test starts from none of ours and leaves none behind
    (main() exports its flags into os.environ, which monkeypatch would not undo). Only the data directory is
    set, to a temp dir, so no test writes a ledger into the user's home."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("BRIDGE_", "OPENAI_")):
            del os.environ[name]
    os.environ["BRIDGE_DATA_DIR"] = str(tmp_path / "data")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_is_always_allowed(host: str) -> None:
    assert check_deployment(Settings(host=host)) is None
    assert check_deployment(Settings(host=host, **KEY)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "gateway.example.com"])
def test_non_loopback_needs_keys_or_an_explicit_opt_out(host: str) -> None:
    refusal = check_deployment(Settings(host=host, **KEY))
    assert refusal is not None and "BRIDGE_API_KEYS" in refusal
    assert check_deployment(Settings(host=host, api_keys="k1", **KEY)) is None
    assert check_deployment(Settings(host=host, allow_unauthenticated=True, **KEY)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5"])
def test_demo_mode_never_binds_non_loopback(host: str) -> None:
    for extra in ({}, {"api_keys": "k1"}, {"allow_unauthenticated": True}):
        refusal = check_deployment(Settings(host=host, **extra))
        assert refusal is not None and "demo" in refusal


def test_main_refuses_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    assert "refusing" in capsys.readouterr().err


@pytest.mark.slow  # a real `messages-bridge serve` process
def test_serve_in_demo_mode_prints_the_banner_and_answers() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OPENAI_"))}
    env["BRIDGE_DATA_DIR"] = os.environ["BRIDGE_DATA_DIR"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "messages_bridge", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
        reply = _wait_and_post(f"http://127.0.0.1:{port}", body, deadline=time.monotonic() + 20)
        assert reply.status_code == 200 and "demo upstream" in reply.json()["content"][0]["text"]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
    assert "DEMO MODE" in err and DEMO_BANNER.strip().splitlines()[1].strip() in err


def _wait_and_post(base: str, body: dict[str, object], *, deadline: float) -> httpx.Response:
    """Poll /healthz until the server is up (bounded by `deadline`), then send one message."""
    with httpx.Client(base_url=base, timeout=5) as http:
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    return http.post("/v1/messages", json=body)
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the gateway did not start within the deadline")
            time.sleep(0.1)
