"""Authentication against named keys (cached per process ≤ 10 s), shared `BRIDGE_API_KEYS`, and JWTs."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import UTC, datetime

from messages_bridge.errors import AuthenticationError
from messages_bridge.team.identity import ANONYMOUS, Identity, shared_identity
from messages_bridge.team.keys import KeyRecord, KeyStore, hash_secret
from messages_bridge.team.metrics import KEY_RELOAD_ERRORS
from messages_bridge.team.tokens import JwtVerifier, looks_like_jwt

logger = logging.getLogger("messages_bridge.team")
MISS_RELOAD_SECONDS = 1.0  # an unknown secret reloads the keys at most this often (a new key works within 1 s)


class KeyRing:
    """The keys of this process: reloaded when older than `ttl`; a failed reload keeps the last good set."""

    def __init__(self, store: KeyStore, *, shared: tuple[str, ...], ttl: float, jwt: JwtVerifier | None = None) -> None:
        self._store = store
        self._shared = tuple(s.encode() for s in shared)
        self._shared_ids = {s: shared_identity(s) for s in shared}
        self._ttl = ttl
        self._jwt = jwt
        self._by_hash: dict[str, tuple[KeyRecord, datetime | None]] = {}
        self._named = False
        self._loaded = -1e9
        self._attempted = -1e9
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    @property
    def required(self) -> bool:
        """A key is needed once any named key exists, shared keys are set, or JWTs are accepted."""
        return self._named or bool(self._shared) or self._jwt is not None

    async def reload(self) -> None:
        async with self._lock:
            self._attempted = time.monotonic()
            try:
                records = await asyncio.to_thread(self._store.load)
            except Exception as exc:  # noqa: BLE001 - any database failure: keep serving with the cached keys
                KEY_RELOAD_ERRORS.inc()
                logger.warning("key reload failed; using cached keys", extra={"exception_type": type(exc).__name__})
                return
            self._by_hash = {h: (r, exp) for r in records for h, exp in r.secrets}
            self._named = bool(records)
            self._loaded = time.monotonic()

    async def aclose(self) -> None:
        """Let a background reload finish (it holds a database connection)."""
        if self._refresh is not None:
            await self._refresh

    async def _fresh(self) -> None:
        """Past half the cache time, reload in the background; past all of it, reload before answering (a failed
        reload keeps the old set, and is tried again at most once a second)."""
        now = time.monotonic()
        age = now - self._loaded
        if age < self._ttl / 2 or now - self._attempted < MISS_RELOAD_SECONDS:
            return
        if age >= self._ttl:
            await self.reload()
        elif self._refresh is None or self._refresh.done():
            self._attempted = now
            self._refresh = asyncio.create_task(self.reload())

    async def authenticate(self, presented: str | None) -> Identity:
        await self._fresh()
        if presented is None:
            if self.required:
                raise AuthenticationError("x-api-key header is required")
            return ANONYMOUS
        if (shared := self._match_shared(presented)) is not None:
            return shared
        if self._jwt is not None and looks_like_jwt(presented):
            return await self._jwt.verify(presented)
        digest = hash_secret(presented)
        # A dict lookup on the SHA-256 of a 256-bit secret: its timing tells nothing usable about the secret.
        found = self._by_hash.get(digest)
        if found is None and time.monotonic() - self._attempted >= MISS_RELOAD_SECONDS:
            await self.reload()  # a key created a moment ago works at once
            found = self._by_hash.get(digest)
        if found is not None:
            return _named_identity(*found)
        if self.required:
            raise AuthenticationError("invalid x-api-key")
        return ANONYMOUS

    def _match_shared(self, presented: str) -> Identity | None:
        candidate = presented.encode()
        matched: bytes | None = None
        for expected in self._shared:  # every comparison runs: timing does not tell which key matched
            if hmac.compare_digest(candidate, expected):
                matched = expected
        return None if matched is None else self._shared_ids[matched.decode()]


def _named_identity(record: KeyRecord, secret_expiry: datetime | None) -> Identity:
    now = datetime.now(UTC)
    if record.revoked_at is not None:
        raise AuthenticationError(f"API key {record.name!r} has been revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthenticationError(f"API key {record.name!r} has expired")
    if secret_expiry is not None and secret_expiry <= now:
        raise AuthenticationError(f"this secret of API key {record.name!r} was rotated and its grace period is over")
    return Identity(kind="key", tenant=record.name, name=record.name, limits=record.limits, label=record.name)
