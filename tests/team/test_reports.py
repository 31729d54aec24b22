"""`messages-bridge usage`, the admin API, and the canary: no content and no key in ledger, reports or logs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from messages_bridge.cli import main
from messages_bridge.config import Settings
from messages_bridge.demo.server import Reply
from messages_bridge.team.schema import ledger
from tests.conftest import FakeUpstream
from tests.observability.helpers import MARKERS, LogCapture, canary_reply, canary_request, leaks
from tests.team.conftest import BODY, TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]
ADMIN = "admin-key-canary-0042"
FIELDS = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cost_usd",
]


async def _traffic(gw: TeamGateway, upstream: FakeUpstream) -> tuple[str, str]:
    alice = gw.create_key("alice")
    bob = gw.create_key("bob")
    await gw.team.keyring.reload()
    upstream.script.push(*(Reply(json_body=canary_reply()) for _ in range(3)))
    await gw.post(alice, headers={"x-claude-code-session-id": "session-1"})
    await gw.post(alice, headers={"x-claude-code-session-id": "session-2"})
    haiku = {**BODY, "model": "claude-haiku-4-5-20251001"}
    await gw.post(bob, haiku, headers={"x-claude-code-session-id": "session-2"})
    await gw.team.writer.flush()
    return alice, bob


def _usage(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["usage", *args]) == 0
    return capsys.readouterr().out


async def test_usage_report_by_every_grouping_as_json_and_csv(
    open_team: Open,
    upstream: FakeUpstream,
    team_settings: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = team_settings()
    gw = await open_team(team=settings)
    await _traffic(gw, upstream)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(settings.data_dir))
    if settings.database_url is not None:
        monkeypatch.setenv("BRIDGE_DATABASE_URL", settings.database_url.get_secret_value())
    by_key = json.loads(_usage(capsys, "--by", "key", "--since", "7d", "--json"))
    assert isinstance(by_key, list)
    assert [r["key"] for r in by_key] == ["alice", "bob"]
    assert all(set(FIELDS) <= set(r) for r in by_key)
    assert by_key[0]["requests"] == 2 and by_key[0]["input_tokens"] == 200 and by_key[0]["output_tokens"] == 60
    assert by_key[0]["cache_read_input_tokens"] == 40 and by_key[0]["cache_creation_input_tokens"] == 0
    assert by_key[0]["cost_usd"] == pytest.approx(2 * 0.0004275)
    by_model = {r["model"]: r for r in json.loads(_usage(capsys, "--by", "model", "--json"))}
    assert by_model["claude-sonnet-4-5"]["requests"] == 2 and by_model["claude-haiku-4-5-20251001"]["requests"] == 1
    by_session = {r["session"]: r["requests"] for r in json.loads(_usage(capsys, "--by", "session", "--json"))}
    assert by_session == {"session-1": 1, "session-2": 2}
    (day,) = json.loads(_usage(capsys, "--by", "day", "--json"))
    assert day["requests"] == 3 and len(day["day"]) == 10
    (up,) = json.loads(_usage(capsys, "--by", "upstream", "--json"))
    assert up["upstream"] == "default"
    table = list(csv.DictReader(io.StringIO(_usage(capsys, "--by", "key", "--csv"))))
    assert table[0]["key"] == "alice" and table[0]["requests"] == "2"
    assert "alice" in _usage(capsys, "--by", "key")


async def test_admin_api_needs_the_admin_key_and_never_a_client_key(
    open_team: Open, upstream: FakeUpstream, team_settings: Callable[..., Any]
) -> None:
    gw = await open_team(team=team_settings(admin_key=ADMIN))
    alice, _ = await _traffic(gw, upstream)
    admin = {"x-api-key": ADMIN}
    assert (await gw.http.get("/admin/keys")).status_code == 401
    client = await gw.http.get("/admin/keys", headers={"x-api-key": alice})
    assert client.status_code == 403 and client.json()["error"]["type"] == "permission_error"
    assert (await gw.http.get("/admin/usage", headers={"authorization": f"Bearer {alice}"})).status_code == 403
    listing = await gw.http.get("/admin/keys", headers=admin)
    assert listing.status_code == 200 and {k["name"] for k in listing.json()["data"]} == {"alice", "bob"}
    usage = await gw.http.get("/admin/usage", params={"by": "key", "since": "7d"}, headers=admin)
    assert usage.status_code == 200 and usage.json()["data"][0]["key"] == "alice"
    created = await gw.http.post("/admin/keys", json={"name": "carol", "rpm": 2, "models": ["claude-*"]}, headers=admin)
    assert created.status_code == 201 and created.json()["secret"].startswith("mbk_")
    carol = created.json()["secret"]
    assert (await gw.post(carol)).status_code == 200
    rotated = await gw.http.post("/admin/keys/carol/rotate", json={"grace": "0s"}, headers=admin)
    assert rotated.status_code == 200
    assert (await gw.post(carol)).status_code == 401
    assert (await gw.post(rotated.json()["secret"])).status_code == 200
    assert (await gw.http.delete("/admin/keys/carol", headers=admin)).status_code == 200
    assert (await gw.post(rotated.json()["secret"])).status_code == 401
    assert (await gw.http.delete("/admin/keys/nobody", headers=admin)).status_code == 400
    assert (await gw.http.get("/admin/usage", params={"by": "nothing"}, headers=admin)).status_code == 400


async def test_admin_api_is_absent_without_an_admin_key(open_team: Open) -> None:
    gw = await open_team()
    assert (await gw.http.get("/admin/keys", headers={"x-api-key": "anything"})).status_code == 404


async def test_canary_no_content_and_no_key_in_ledger_reports_admin_answers_or_logs(
    open_team: Open,
    upstream: FakeUpstream,
    team_settings: Callable[..., Any],
    capture_logs: Callable[[Settings], LogCapture],
    make_settings: Callable[..., Settings],
) -> None:
    logs = capture_logs(make_settings(log_level="debug"))
    gw = await open_team(team=team_settings(admin_key=ADMIN), log_level="debug")
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    upstream.script.push(Reply(json_body=canary_reply()), Reply(json_body=canary_reply()))
    ok = await gw.post(secret, canary_request(), headers={"x-claude-code-session-id": "s-1"})
    assert ok.status_code == 200 and MARKERS["reply_text"] in ok.text
    assert (await gw.post(secret, {**canary_request(), "stream": True})).status_code == 200
    assert (await gw.post(secret + "x", canary_request())).status_code == 401
    rows = await gw.rows()
    assert len(rows) == 3
    admin = {"x-api-key": ADMIN}
    answers = [
        (await gw.http.get("/admin/keys", headers=admin)).text,
        *[
            (await gw.http.get("/admin/usage", params={"by": by}, headers=admin)).text
            for by in ("key", "model", "upstream", "session", "day")
        ],
    ]
    with gw.team.db.engine.connect() as conn:
        raw = json.dumps([list(r) for r in conn.execute(select(ledger))], default=str)
    for text in (raw, *answers, logs.text):
        assert leaks(text) == [], leaks(text)
        assert secret not in text and secret[4:] not in text and ADMIN not in text
