"""JWTs for Claude Code's apiKeyHelper: a JWKS served on 127.0.0.1, refreshed on an unknown kid; policies."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from messages_bridge.team import tokens
from tests.servers import serving
from tests.team.conftest import TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]
ISSUER = "https://idp.example.test"
AUDIENCE = "messages-bridge"


class Idp:
    """An identity provider: RSA keys by kid, the JWKS of the published ones, token minting."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, *, sub: str = "dev@example.test", ttl: int = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl, **claims}
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[tuple[Idp, str]]:
    provider = Idp()
    provider.add_key("k1")

    async def jwks(_: Request) -> JSONResponse:
        provider.fetches += 1
        return JSONResponse(provider.jwks())

    with serving(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as server:
        yield provider, server.url + "/.well-known/jwks.json"


async def _gateway(open_team: Open, team_settings: Callable[..., Any], **overrides: Any) -> TeamGateway:
    settings = team_settings(
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_policy_claim="policy",
        jwt_default_policy="standard",
        policies={"standard": {}, "trial": {"rpm": 1, "models": ["claude-haiku-*", "claude-sonnet-*"]}},
        **overrides,
    )
    return await open_team(team=settings)


async def test_a_valid_token_authenticates_and_names_the_ledger_row(
    open_team: Open, team_settings: Callable[..., Any], idp: tuple[Idp, str]
) -> None:
    provider, url = idp
    gw = await _gateway(open_team, team_settings, jwt_jwks_url=url)
    assert (await gw.post()).status_code == 401, "with JWTs accepted, every request needs a credential"
    ok = await gw.post(provider.token("k1"))
    assert ok.status_code == 200
    bearer = await gw.http.post(
        "/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer " + provider.token("k1", sub="other@example.test")},
    )
    assert bearer.status_code == 200
    rows = await gw.rows()
    assert [r["key_name"] for r in rows] == [None, "dev@example.test", "other@example.test"]


async def test_expired_forged_and_misaddressed_tokens_get_401(
    open_team: Open, team_settings: Callable[..., Any], idp: tuple[Idp, str]
) -> None:
    provider, url = idp
    gw = await _gateway(open_team, team_settings, jwt_jwks_url=url)
    expired = await gw.post(provider.token("k1", ttl=-60))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    forger = Idp()
    forger.add_key("k1")  # same kid, another private key
    assert (await gw.post(forger.token("k1"))).status_code == 401
    assert (await gw.post(provider.token("k1", aud="someone-else"))).status_code == 401
    assert (await gw.post(provider.token("k1", iss="https://evil.test"))).status_code == 401
    provider.add_key("unpublished", publish=False)
    assert (await gw.post(provider.token("unpublished"))).status_code == 401
    assert (await gw.post(provider.token("k1"))).status_code == 200


async def test_the_jwks_is_cached_and_refetched_for_an_unknown_kid(
    open_team: Open, team_settings: Callable[..., Any], idp: tuple[Idp, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "JWKS_REFETCH_COOLDOWN", 0.0)
    provider, url = idp
    gw = await _gateway(open_team, team_settings, jwt_jwks_url=url)
    assert (await gw.post(provider.token("k1"))).status_code == 200
    assert (await gw.post(provider.token("k1", sub="b@example.test"))).status_code == 200
    assert provider.fetches == 1
    provider.add_key("k2")  # the identity provider rotates its signing key
    assert (await gw.post(provider.token("k2"))).status_code == 200
    assert provider.fetches == 2


async def test_the_policy_claim_selects_the_limits(
    open_team: Open, team_settings: Callable[..., Any], idp: tuple[Idp, str]
) -> None:
    provider, url = idp
    gw = await _gateway(open_team, team_settings, jwt_jwks_url=url)
    trial = provider.token("k1", sub="trial@example.test", policy="trial")
    assert (await gw.post(trial)).status_code == 200
    limited = await gw.post(trial)
    assert limited.status_code == 429 and limited.headers["anthropic-ratelimit-requests-limit"] == "1"
    opus = await gw.post(
        provider.token("k1", sub="t2@example.test", policy="trial"),
        {"model": "claude-opus-4-8", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert opus.status_code == 403
    unknown = await gw.post(provider.token("k1", policy="platinum"))
    assert unknown.status_code == 403 and "platinum" in unknown.json()["error"]["message"]


async def test_a_static_public_key(open_team: Open, team_settings: Callable[..., Any], tmp_path: Any) -> None:
    provider = Idp()
    provider.add_key("any")
    pem = (
        provider.keys["any"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    path = tmp_path / "idp.pem"
    path.write_bytes(pem)
    gw = await _gateway(open_team, team_settings, jwt_public_key=str(path))
    assert (await gw.post(provider.token("any"))).status_code == 200
    other = Idp()
    other.add_key("any")
    assert (await gw.post(other.token("any"))).status_code == 401
