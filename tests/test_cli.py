"""The CLI: deployment safety checks, and `python -m messages_bridge serve` starting in demo mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messages_bridge.cli import DEMO_BANNER, check_deployment, main
from messages_bridge.config import Settings
from tests.processes import clean_env, gateway_process
from tests.servers import free_port

KEY: dict[str, Any] = {"openai_api_key": "sk-upstream"}


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path) -> Iterator[None]:
    """Settings read the environment: every test starts from none of ours and leaves none behind
    (main() exports its flags into os.environ, which monkeypatch would not undo). Only the data directory is
    set, to a temp dir, so no test writes a ledger into the user's home."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env(BRIDGE_DATA_DIR=str(tmp_path / "data")))
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
def test_serve_in_demo_mode_prints_the_banner_and_answers(tmp_path: Path) -> None:
    env = clean_env(BRIDGE_DATA_DIR=os.environ["BRIDGE_DATA_DIR"])
    log = tmp_path / "gateway.log"
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]}
    with gateway_process(env, log) as gateway, httpx.Client(base_url=gateway.url, timeout=5) as http:
        reply = http.post("/v1/messages", json=body)
    assert reply.status_code == 200 and "demo upstream" in reply.json()["content"][0]["text"]
    output = log.read_text()
    assert "DEMO MODE" in output and DEMO_BANNER.strip().splitlines()[1].strip() in output
