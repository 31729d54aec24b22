"""Claude Code end to end through a two-upstream routing file whose first upstream is down: the session works,
every turn reaches the second upstream once, as a stream, and the dead upstream's circuit opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from tests.conftest import FakeUpstream
from tests.e2e.test_claude_code import Claude, bash_call, claude_bin, scripted, streamed_turns, succeeded, text_item
from tests.servers import free_port, serving

pytestmark = pytest.mark.slow
__all__ = ["claude_bin"]


def test_a_session_survives_its_first_upstream_being_down(
    claude_bin: Path, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(
        "upstreams:\n"
        f"  primary: {{base_url: 'http://127.0.0.1:{free_port()}/v1', breaker: {{failures: 1, cooldown: 60}}}}\n"
        f"  backup: {{base_url: '{upstream.base_url}'}}\n"
        "routes:\n"
        "  - {match: 'claude-haiku-*', targets: [primary/gpt-5-mini, backup/gpt-5-mini]}\n"
        "  - {match: '*', targets: [primary/gpt-5, backup/gpt-5]}\n"
    )
    marker = "mb-routing-e2e"
    command = f"echo {marker} | tee proof.txt"
    upstream.script.push(
        scripted("resp_route_call", text_item("msg_route_call", "Running it."), bash_call("call_route_bash", command))
    )
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    app = create_app(Settings(config=str(config), shutdown_grace=1.0))
    with serving(app) as gateway:
        claude = Claude(claude_bin, gateway.url, home, work)
        result = succeeded(
            claude.run(f"Print {marker} with Bash", "--allowedTools", "Bash", CLAUDE_CODE_DISABLE_THINKING="1")
        )
        breaker = app.state.gateway.router.upstreams["primary"].breaker
        assert breaker.state == "open"
    assert (work / "proof.txt").read_text() == marker + "\n"
    assert result["result"] == f"The tool returned: {marker}"
    first, second = streamed_turns(upstream, 2)
    assert first["model"] == second["model"] == "gpt-5"
    assert json.loads(second["input"][-2]["arguments"])["command"] == command
