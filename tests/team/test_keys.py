"""Named keys: secrets shown once and stored hashed, authentication, models, revocation, rotation, expiry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from messages_bridge.cli import main
from messages_bridge.team import keyring
from messages_bridge.team.keys import Limits
from tests.team.conftest import BODY, TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_create_prints_the_secret_alone_on_the_last_line_and_stores_only_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    code, out, _ = _cli(
        capsys,
        "keys",
        "create",
        "alice",
        "--models",
        "claude-*,gpt-5",
        "--rpm",
        "10",
        "--budget-usd",
        "5",
        "--budget-period",
        "week",
        "--expires",
        "90d",
    )
    assert code == 0
    secret = out.rstrip("\n").splitlines()[-1]
    assert secret.startswith("mbk_") and len(secret) >= 40
    code, second, _ = _cli(capsys, "keys", "create", "bob")
    assert code == 0 and second.splitlines()[-1] != secret
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("bridge.db*"))
    assert secret.encode() not in stored and secret[4:].encode() not in stored
    code, listing, _ = _cli(capsys, "keys", "list", "--json")
    assert code == 0 and secret not in listing
    assert '"rpm": 10' in listing and '"budget_period": "week"' in listing and '"claude-*"' in listing
    code, _, err = _cli(capsys, "keys", "create", "alice")
    assert code == 1 and "already exists" in err


def test_cli_rotate_and_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    _, out, _ = _cli(capsys, "keys", "create", "alice")
    first = out.splitlines()[-1]
    code, out, _ = _cli(capsys, "keys", "rotate", "alice", "--grace", "1h")
    assert code == 0 and out.splitlines()[-1].startswith("mbk_") and out.splitlines()[-1] != first
    assert _cli(capsys, "keys", "revoke", "alice")[0] == 0
    code, _, err = _cli(capsys, "keys", "revoke", "nobody")
    assert code == 1 and "no key named" in err
    code, out, _ = _cli(capsys, "keys", "list")
    assert "revoked" in out


async def test_without_named_keys_the_gateway_stays_open_and_with_one_every_request_needs_a_key(
    open_team: Open,
) -> None:
    gw = await open_team()
    assert (await gw.post()).status_code == 200
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    missing = await gw.post()
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert (await gw.post("mbk_wrong")).status_code == 401
    assert (await gw.post(secret)).status_code == 200
    bearer = await gw.http.post("/v1/messages", json=BODY, headers={"authorization": f"Bearer {secret}"})
    assert bearer.status_code == 200
    assert (await gw.http.get("/v1/models", headers={"x-api-key": secret})).status_code == 200
    assert (await gw.http.get("/v1/models")).status_code == 401


async def test_a_key_created_elsewhere_works_at_once(open_team: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await open_team()
    gw.create_key("first")
    await gw.team.keyring.reload()
    monkeypatch.setattr(keyring, "MISS_RELOAD_SECONDS", 0.0)  # as if the last reload were a second ago or more
    secret = gw.create_key("second")  # not yet in this process's cache: an unknown key reloads it
    assert (await gw.post(secret)).status_code == 200


async def test_shared_keys_keep_working_next_to_named_keys(open_team: Open) -> None:
    gw = await open_team(api_keys="shared-one,shared-two")
    assert (await gw.post("shared-two")).status_code == 200
    assert (await gw.post()).status_code == 401
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    assert (await gw.post(secret)).status_code == 200
    assert (await gw.post("shared-one")).status_code == 200
    rows = await gw.rows()
    assert rows[0]["key_name"].startswith("shared:") and "shared-two" not in rows[0]["key_name"]
    assert rows[2]["key_name"] == "alice"


async def test_a_key_outside_its_models_gets_403(open_team: Open) -> None:
    gw = await open_team()
    secret = gw.team.store.create("haiku-only", Limits(models=("claude-haiku-*",)))
    await gw.team.keyring.reload()
    denied = await gw.post(secret)
    assert denied.status_code == 403
    assert denied.json()["error"]["type"] == "permission_error"
    assert "claude-sonnet-4-5" in denied.json()["error"]["message"]
    assert (await gw.post(secret, {**BODY, "model": "claude-haiku-4-5-20251001"})).status_code == 200
    count = await gw.http.post(
        "/v1/messages/count_tokens",
        json={"model": "claude-opus-4-8", "messages": BODY["messages"]},
        headers={"x-api-key": secret},
    )
    assert count.status_code == 403


async def test_revoked_and_expired_keys_get_401(open_team: Open) -> None:
    gw = await open_team()
    secret = gw.create_key("alice")
    old = gw.team.store.create("old", Limits(), expires_in=timedelta(seconds=-1))
    await gw.team.keyring.reload()
    assert (await gw.post(secret)).status_code == 200
    expired = await gw.post(old)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    gw.team.store.revoke("alice")
    await gw.team.keyring.reload()
    revoked = await gw.post(secret)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["type"] == "authentication_error" and "revoked" in revoked.json()["error"]["message"]


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(open_team: Open) -> None:
    gw = await open_team()
    first = gw.create_key("alice")
    second = gw.team.store.rotate("alice", grace=timedelta(hours=1))
    await gw.team.keyring.reload()
    assert (await gw.post(first)).status_code == 200
    assert (await gw.post(second)).status_code == 200
    third = gw.team.store.rotate("alice", grace=timedelta(0))
    await gw.team.keyring.reload()
    assert (await gw.post(first)).status_code == 401
    assert (await gw.post(second)).status_code == 401
    assert (await gw.post(third)).status_code == 200


async def test_revocation_reaches_a_running_gateway_within_the_cache_time(
    open_team: Open, team_settings: Callable[..., object]
) -> None:
    gw = await open_team(team=team_settings(key_cache_seconds=0.2))
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    assert (await gw.post(secret)).status_code == 200
    gw.team.store.revoke("alice")  # as another process would: this gateway's cache is not told
    import asyncio

    for _ in range(100):
        if (await gw.post(secret)).status_code == 401:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("revocation never reached the gateway")


def test_a_non_loopback_bind_is_allowed_once_named_keys_guard_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from messages_bridge.cli import serve
    from messages_bridge.config import Settings

    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)  # not actually serving
    monkeypatch.setattr("messages_bridge.cli.raise_open_file_limit", lambda: 1 << 16)  # leave the limit alone
    monkeypatch.setattr("messages_bridge.cli.configure_logging", lambda settings: None)  # leave logging alone
    settings = Settings(host="0.0.0.0", openai_api_key="sk-x")
    assert serve(settings) == 2 and "refusing" in capsys.readouterr().err
    _cli(capsys, "keys", "create", "alice")
    assert serve(settings) == 0
