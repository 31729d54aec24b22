"""Which store a configuration gets, and the configurations refused at start-up (never spurious 404s)."""

from __future__ import annotations

import base64
import os

import pytest

from messages_bridge.cli import main
from messages_bridge.config import Settings
from messages_bridge.observability.logs import masked_settings, settings_secrets
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.setup import build_store, threads_problem
from tests.servers import free_port

KEY = base64.b64encode(os.urandom(32)).decode()


def test_one_worker_keeps_threads_in_memory_by_default() -> None:
    settings = Settings()
    assert settings.threads is True
    assert threads_problem(settings) is None
    assert isinstance(build_store(settings), MemoryThreadStore)


def test_several_workers_without_redis_are_refused_not_pinned() -> None:
    problem = threads_problem(Settings(workers=4))
    assert problem is not None and "BRIDGE_REDIS_URL and BRIDGE_THREADS_KEY" in problem
    problem = threads_problem(Settings(workers=4, redis_url="redis://127.0.0.1:1/0"))
    assert problem is not None and "BRIDGE_THREADS_KEY" in problem
    assert threads_problem(Settings(workers=4, threads=False)) is None
    assert threads_problem(Settings(workers=4, redis_url="redis://127.0.0.1:1/0", threads_key=KEY)) is None


@pytest.mark.parametrize("key", ["nope", base64.b64encode(b"16 bytes is weak").decode()])
def test_a_malformed_thread_key_is_refused(key: str) -> None:
    problem = threads_problem(Settings(redis_url="redis://127.0.0.1:1/0", threads_key=key))
    assert problem is not None and "BRIDGE_THREADS_KEY" in problem


def test_threads_off_parses_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_THREADS", "off")
    assert Settings().threads is False


def test_the_thread_key_is_a_secret_everywhere() -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(redis_url="redis://127.0.0.1:1/0", threads_key=f"{KEY},{other}")
    assert KEY not in str(masked_settings(settings)) and other not in str(masked_settings(settings))
    assert {KEY, other} <= set(settings_secrets(settings))


def test_serve_refuses_several_workers_without_a_shared_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--port", str(free_port())]) == 2
    assert "refusing to run 2 workers" in capsys.readouterr().err
