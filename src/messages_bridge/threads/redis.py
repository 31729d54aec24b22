"""Threads in Redis, for several workers and replicas: encrypted at rest, expired by Redis, moved atomically.

Keys are `mb:thr:{<tenant>}:<message id>` (the tenant in a hash tag, so one tenant's keys share a cluster slot).
A head's value is `H` + an AES-GCM blob (see `crypto`), a continued id's is the tombstone `T`, a lease is a
separate key set with NX and its own expiry. Taking a lease and moving the head are Lua scripts, so two replicas
never both continue one reply. Only ciphertext reaches Redis, and so its RDB/AOF files.

Redis unreachable: a continue is answered `thread_not_found` (the client replays the conversation) and a reply
is simply not stored, so an outage costs replays, never a wrong answer or a failed request.
"""

from __future__ import annotations

import logging

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messages_bridge.threads.crypto import KeyRing
from messages_bridge.threads.store import Limits, Refusal, StoredThread

logger = logging.getLogger("messages_bridge.threads")
PREFIX = "mb:thr:"
HEAD = b"H"
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(StoredThread)
_FAILURES = (RedisError, OSError)

# KEYS: head, lease. ARGV: lease id, lease ms, head ms while leased. → {0} unknown, {1} tombstone, {2} leased, {3, v}
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
if string.sub(v, 1, 1) ~= 'H' then return {1} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {3, v}
"""
# KEYS: old head, its lease, new head. ARGV: lease id, value, idle ms, tombstone ms. → 1 moved, 0 not
_COMMIT = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 1) ~= 'H' then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], 'T', 'PX', ARGV[4])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: head, lease. ARGV: lease id, idle ms.
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  local v = redis.call('GET', KEYS[1])
  if v and string.sub(v, 1, 1) == 'H' and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisThreadStore:
    def __init__(self, client: Redis, keys: KeyRing, limits: Limits | None = None, *, prefix: str = PREFIX) -> None:
        self._redis = client
        self._keys = keys
        self.limits = limits or Limits()
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._commit = client.register_script(_COMMIT)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_settings(cls, url: str, key_setting: str, limits: Limits) -> RedisThreadStore:
        # One quick retry on a broken connection: after a Redis restart the pooled connections are dead, and the
        # first command on each would otherwise fail (costing the client a replay it does not need).
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2)
        client = Redis.from_url(
            url,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
            health_check_interval=30,
            retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        return cls(client, KeyRing.from_setting(key_setting), limits)

    def key(self, tenant: str, message_id: str) -> str:
        return f"{self._prefix}{{{tenant}}}:{message_id}"

    async def acquire(self, tenant: str, message_id: str, lease: str) -> StoredThread | Refusal:
        key = self.key(tenant, message_id)
        limits = self.limits
        try:
            found = await self._acquire(
                keys=[key, key + ":lease"], args=[lease, _ms(limits.lease), _ms(limits.lease + limits.idle)]
            )
        except _FAILURES as exc:
            _warn("acquire", exc)
            return Refusal.NOT_FOUND
        code = int(found[0])
        if code != 3:
            return (Refusal.NOT_FOUND, Refusal.ALREADY_CONTINUED, Refusal.IN_FLIGHT)[code]
        thread = self._unseal(bytes(found[1]), tenant, message_id)
        if thread is None:
            await self.release(tenant, message_id, lease)
            return Refusal.NOT_FOUND
        return thread

    async def release(self, tenant: str, message_id: str, lease: str) -> None:
        key = self.key(tenant, message_id)
        try:
            await self._release(keys=[key, key + ":lease"], args=[lease, _ms(self.limits.idle)])
        except _FAILURES as exc:
            _warn("release", exc)  # the lease expires by itself

    async def commit(self, thread: StoredThread, *, previous: str | None, lease: str | None) -> bool:
        if thread.size() > self.limits.max_thread_bytes:
            return False
        key = self.key(thread.tenant, thread.head)
        value = HEAD + self._keys.seal(_ENCODER.encode(thread), _aad(thread.tenant, thread.head))
        idle = _ms(self.limits.idle)
        try:
            if previous is None:
                return bool(await self._redis.set(key, value, px=idle, nx=True))
            old = self.key(thread.tenant, previous)
            tomb = _ms(self.limits.idle + self.limits.lease)
            return bool(await self._commit(keys=[old, old + ":lease", key], args=[lease or "", value, idle, tomb]))
        except _FAILURES as exc:
            _warn("commit", exc)
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _unseal(self, value: bytes, tenant: str, message_id: str) -> StoredThread | None:
        plain = self._keys.open(value[1:], _aad(tenant, message_id))
        if plain is None:
            logger.warning("a stored thread could not be decrypted (key removed from BRIDGE_THREADS_KEY, or altered)")
            return None
        try:
            thread = _DECODER.decode(plain)
        except msgspec.DecodeError:
            return None
        return thread if thread.tenant == tenant and thread.head == message_id else None


def _aad(tenant: str, message_id: str) -> bytes:
    return tenant.encode() + b"\x00" + message_id.encode()


def _warn(operation: str, exc: BaseException) -> None:
    logger.warning("thread store unavailable", extra={"exception_type": f"{operation}: {type(exc).__name__}"})
