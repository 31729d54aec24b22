"""Team settings, read from `BRIDGE_*` environment variables (secrets never come from flags)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KEY_CACHE_MAX_SECONDS = 10.0


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/messages-bridge`, else `~/.local/share/messages-bridge`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "messages-bridge"


def _json_object(value: object) -> object:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else {}
    return value


class TeamSettings(BaseSettings):
    """Where keys, ledger and counters live, the admin key, prices, JWT verification."""

    model_config = SettingsConfigDict(env_prefix="BRIDGE_", frozen=True, extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="SQLite database and ledger spool")
    database_url: SecretStr | None = Field(default=None, description="PostgreSQL URL (replaces SQLite)")
    redis_url: SecretStr | None = Field(default=None, description="Redis URL for limit and budget counters")
    redis_failure: Literal["open", "closed"] = Field(
        default="open", description="Redis unreachable: 'open' admits requests (counted loudly), 'closed' 529s"
    )
    admin_key: SecretStr | None = Field(default=None, description="key for /admin/*; unset = admin API off")
    prices: Annotated[dict[str, dict[str, object]], NoDecode] = Field(
        default_factory=dict, description='JSON {"gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10}}'
    )
    key_cache_seconds: float = Field(default=KEY_CACHE_MAX_SECONDS, gt=0, le=KEY_CACHE_MAX_SECONDS)
    ledger_batch_size: int = Field(default=500, ge=1)
    ledger_flush_interval: float = Field(default=0.25, gt=0)
    ledger_retry_interval: float = Field(default=1.0, gt=0)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_public_key: str | None = Field(default=None, description="PEM text, or a path to a PEM file")
    jwt_jwks_url: str | None = None
    jwt_algorithms: str = "RS256,ES256,EdDSA"
    jwt_name_claim: str = "sub"
    jwt_policy_claim: str | None = Field(default=None, description="claim naming the policy of a token")
    jwt_default_policy: str | None = None
    policies: Annotated[dict[str, dict[str, object]], NoDecode] = Field(
        default_factory=dict, description='JSON {"dev": {"rpm": 60, "tpm": 200000, "models": ["claude-*"]}}'
    )

    @field_validator("prices", "policies", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        return _json_object(value)

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_public_key or self.jwt_jwks_url)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "bridge.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"
