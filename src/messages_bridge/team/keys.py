"""Named keys: secrets (shown once, stored as a SHA-256 hash), their limits, and the SQL store for them."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from messages_bridge.team.db import Database, stored_time

if TYPE_CHECKING:
    from sqlalchemy import Connection

SECRET_PREFIX = "mbk_"  # noqa: S105 - a prefix, not a secret
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class KeyError_(Exception):
    """A key operation that cannot be done (unknown name, duplicate, bad value); the message says why."""


def new_secret() -> str:
    """`mbk_` + 256 random bits (43 url-safe characters)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 is enough for 256-bit random secrets (no dictionary to slow down); hex, 64 characters."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w`, `45s`."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise KeyError_(f"not a duration: {text!r} (use e.g. 90d, 12h, 30m)")
    return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


@dataclass(frozen=True, slots=True)
class Limits:
    """What a key (or a JWT policy) may do; None = unlimited."""

    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "month"

    def allows_model(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, glob) for glob in self.models)

    @property
    def limited(self) -> bool:
        return not (self.rpm is None and self.tpm is None and self.max_concurrency is None and self.budget_usd is None)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One named key as stored (never a secret)."""

    name: str
    created_at: datetime
    limits: Limits
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    secrets: tuple[tuple[str, datetime | None], ...] = field(default=())  # (hash, secret expiry)

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: datetime) -> dict[str, object]:
        """The listing of `keys list` and `GET /admin/keys`."""
        limits = self.limits
        return {
            "name": self.name,
            "state": self.state(now),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "models": list(limits.models),
            "rpm": limits.rpm,
            "tpm": limits.tpm,
            "max_concurrency": limits.max_concurrency,
            "budget_usd": limits.budget_usd,
            "budget_period": limits.budget_period if limits.budget_usd is not None else None,
            "secrets": sum(1 for _, exp in self.secrets if exp is None or exp > now),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record(row: tuple[Any, ...], hashes: tuple[tuple[str, datetime | None], ...]) -> KeyRecord:
    """A key from its `_LOAD_KEYS` row."""
    name, created_at, expires_at, revoked_at, models, rpm, tpm, max_concurrency, budget_usd, period = row
    return KeyRecord(
        name=name,
        created_at=_required_time(created_at),
        expires_at=stored_time(expires_at),
        revoked_at=stored_time(revoked_at),
        limits=Limits(
            models=tuple(m for m in (models or "").split(",") if m),
            rpm=rpm,
            tpm=tpm,
            max_concurrency=max_concurrency,
            budget_usd=budget_usd,
            budget_period=period or "month",
        ),
        secrets=hashes,
    )


def _required_time(value: datetime | str) -> datetime:
    moment = stored_time(value)
    assert moment is not None  # a NOT NULL column
    return moment


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise KeyError_("a key name is 1-64 characters: letters, digits, and _ . @ - (not first)")
    return name


_LOAD_KEYS = (
    "SELECT name, created_at, expires_at, revoked_at, models, rpm, tpm, max_concurrency, budget_usd, budget_period "
    "FROM api_keys"
)
_LOAD_SECRETS = "SELECT key_name, secret_hash, expires_at FROM api_key_secrets"


class KeyStore:
    """Create, list, revoke and rotate keys in the SQL database (blocking calls: run them off the event loop).

    Loading is plain SQL (every reload, on the serve path); changes use SQLAlchemy Core (operators, rarely).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, limits: Limits, *, expires_in: timedelta | None = None) -> str:
        """A new key; returns its secret (the only time it exists outside the client)."""
        from sqlalchemy import insert, select

        from messages_bridge.team.schema import api_key_secrets, api_keys

        check_name(name)
        now = datetime.now(UTC)
        secret = new_secret()
        with self.db.engine.begin() as conn:
            if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first() is not None:
                raise KeyError_(f"a key named {name!r} already exists")
            conn.execute(
                insert(api_keys).values(
                    name=name,
                    created_at=now,
                    expires_at=now + expires_in if expires_in else None,
                    models=",".join(limits.models) or None,
                    rpm=limits.rpm,
                    tpm=limits.tpm,
                    max_concurrency=limits.max_concurrency,
                    budget_usd=limits.budget_usd,
                    budget_period=limits.budget_period if limits.budget_usd is not None else None,
                )
            )
            conn.execute(insert(api_key_secrets).values(key_name=name, secret_hash=hash_secret(secret), created_at=now))
        return secret

    def revoke(self, name: str) -> None:
        from sqlalchemy import update

        from messages_bridge.team.schema import api_keys

        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if done.rowcount == 0:
                self._missing(conn, name)
                raise KeyError_(f"key {name!r} is already revoked")

    def rotate(self, name: str, *, grace: timedelta) -> str:
        """A new secret for `name`; the current ones keep working for `grace`, then stop."""
        from sqlalchemy import insert, select, update

        from messages_bridge.team.schema import api_key_secrets, api_keys

        now = datetime.now(UTC)
        secret = new_secret()
        with self.db.engine.begin() as conn:
            row = conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.name == name)).first()
            if row is None:
                raise KeyError_(f"no key named {name!r}")
            if row.revoked_at is not None:
                raise KeyError_(f"key {name!r} is revoked")
            conn.execute(
                update(api_key_secrets)
                .where(
                    api_key_secrets.c.key_name == name,
                    (api_key_secrets.c.expires_at.is_(None)) | (api_key_secrets.c.expires_at > now + grace),
                )
                .values(expires_at=now + grace)
            )
            conn.execute(insert(api_key_secrets).values(key_name=name, secret_hash=hash_secret(secret), created_at=now))
        return secret

    def load(self) -> list[KeyRecord]:
        """Every key with its secret hashes (the tables are small: one row per person or service)."""
        key_rows = self.db.query(_LOAD_KEYS)
        by_key: dict[str, list[tuple[str, datetime | None]]] = {}
        for key_name, secret_hash, expires_at in self.db.query(_LOAD_SECRETS):
            by_key.setdefault(key_name, []).append((secret_hash, stored_time(expires_at)))
        return [_record(row, tuple(by_key.get(row[0], ()))) for row in key_rows]

    @staticmethod
    def _missing(conn: Connection, name: str) -> None:
        from sqlalchemy import select

        from messages_bridge.team.schema import api_keys

        if conn.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first() is None:
            raise KeyError_(f"no key named {name!r}")
