"""Claude Code end to end with a named key: its session id lands in the ledger, attributed to the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.team.db import Database, make_engine, upgrade
from messages_bridge.team.keys import KeyStore, Limits
from messages_bridge.team.schema import ledger
from messages_bridge.team.settings import TeamSettings
from tests.conftest import FakeUpstream
from tests.e2e.claude_code import claude_env, run_claude
from tests.e2e.test_claude_code import claude_bin, scripted, succeeded, text_item
from tests.servers import serving

pytestmark = pytest.mark.slow
__all__ = ["claude_bin"]


def test_claude_code_with_a_named_key_is_attributed_by_session(
    claude_bin: Path, make_settings: Callable[..., Settings], upstream: FakeUpstream, tmp_path: Path
) -> None:
    team = TeamSettings(data_dir=tmp_path / "data", ledger_flush_interval=0.05)
    engine = make_engine(team)
    upgrade(engine)
    secret = KeyStore(Database(engine=engine)).create("dev-laptop", Limits(models=("claude-*",), rpm=100))
    upstream.script.push(scripted("resp_team", text_item("msg_team", "attributed")))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    with serving(create_app(make_settings(), team=team)) as server:
        env = claude_env(server.url, home, ANTHROPIC_API_KEY=secret)
        result = succeeded(run_claude(claude_bin, "Say the word", env=env, cwd=work))
        assert result["result"] == "attributed"
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(ledger)).mappings()]
    engine.dispose()
    calls = [r for r in rows if r["route"] == "/v1/messages"]
    assert calls and all(r["key_name"] == "dev-laptop" for r in rows)
    sessions = {r["session_id"] for r in calls}
    assert len(sessions) == 1 and None not in sessions
    assert calls[0]["stream"] is True and calls[0]["output_tokens"] == 37
