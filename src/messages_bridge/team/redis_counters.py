"""The counters in Redis, shared by every worker and replica: one round trip per request, at admission.

Admission is one Lua script. Settlements (the real usage, the lease let go, the spend) are queued and written by
a background task in one pipeline per batch, off the request path; an admission that finds settlements still
queued sends them first in its own pipeline, so this process's next request always sees them; other processes
see them once the background pipeline lands, within `LINGER` (5 ms) and a round trip. Budgets stay safe meanwhile:
the reservation made at admission holds until its settlement replaces it.

Keys carry the key name in a hash tag (`mb:{name}:…`) so one key's counters sit in one Redis Cluster slot.
A failed call opens a short circuit (`COOL_DOWN` seconds) so a dead Redis costs no timeout per request.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, RedisError

from messages_bridge.team.counters import (
    LEASE_SECONDS,
    RESERVATION_TTL,
    WINDOW,
    Ask,
    CountersUnavailable,
    Settlement,
    Verdict,
)
from messages_bridge.team.metrics import COUNTER_STORE_ERRORS

SOCKET_TIMEOUT = 0.5
COOL_DOWN = 1.0
LINGER = 0.005  # a settlement waits this long for the next admission to carry it before a pipeline of its own
MAX_QUEUED = 10_000  # settlements waiting for Redis; beyond this (Redis far behind) the oldest are dropped, counted

# KEYS: requests zset, tokens hash (minute -> tokens), leases zset, spent, reserved.
_ADMIT = """
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local maxc = tonumber(ARGV[5])
local lease = ARGV[6]
local budget = tonumber(ARGV[7])
local reserve = tonumber(ARGV[8])
local window = tonumber(ARGV[9])
local lease_ttl = tonumber(ARGV[10])
local reservation_ttl = tonumber(ARGV[11])
local refused = ''
local retry = 0
local spent = 0
if budget >= 0 then
  spent = (tonumber(redis.call('GET', KEYS[4])) or 0) + (tonumber(redis.call('GET', KEYS[5])) or 0)
  if spent >= budget then refused = 'budget' end
end
local used_req = 0
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  used_req = redis.call('ZCARD', KEYS[1])
  if refused == '' and used_req >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    refused = 'requests'
    retry = tonumber(oldest[2]) + window - now
  end
end
local bucket = math.floor(now / window)
local used_tok = 0
if tpm > 0 then
  local vals = redis.call('HMGET', KEYS[2], tostring(bucket), tostring(bucket - 1))
  local cur = tonumber(vals[1]) or 0
  local prev = tonumber(vals[2]) or 0
  used_tok = math.max(0, math.floor(prev * (1 - (now - bucket * window) / window) + cur))
  if refused == '' and used_tok + tokens > tpm then
    refused = 'tokens'
    retry = (bucket + 1) * window - now
  end
end
local used_conc = 0
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  used_conc = redis.call('ZCARD', KEYS[3])
  if refused == '' and used_conc >= maxc then
    refused = 'concurrency'
    retry = 1000
  end
end
if refused == '' then
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, lease)
    redis.call('PEXPIRE', KEYS[1], window)
  end
  if tpm > 0 then
    redis.call('HINCRBY', KEYS[2], tostring(bucket), tokens)
    redis.call('HDEL', KEYS[2], tostring(bucket - 2))
    redis.call('PEXPIRE', KEYS[2], 2 * window)
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[3], now + lease_ttl, lease)
    redis.call('PEXPIRE', KEYS[3], lease_ttl)
  end
  if budget >= 0 and reserve > 0 then
    redis.call('INCRBY', KEYS[5], reserve)
    redis.call('EXPIRE', KEYS[5], reservation_ttl)
  end
end
return {refused, used_req, used_tok, used_conc, spent, retry}
"""


def redis_keys(key: str, period: str) -> list[str]:
    """The Redis keys of one API key's counters: requests, tokens, leases, the period's spend and reservations."""
    base = "mb:{" + key + "}:"
    return [base + "rpm", base + "tpm", base + "conc", base + "spent:" + period, base + "reserved:" + period]


def _queue_settlement(pipe: Pipeline, s: Settlement) -> int:
    """Add one settlement's commands to `pipe`; returns how many replies they produce (the last: the spend)."""
    _, tpm_key, conc_key, spent_key, reserved_key = redis_keys(s.key, s.period)
    n = 0
    if s.tpm and s.tokens_delta:
        pipe.hincrby(tpm_key, str(int(time.time() // WINDOW)), s.tokens_delta)
        n += 1
    if s.concurrency:
        pipe.zrem(conc_key, s.lease)
        n += 1
    if s.budget:  # the spend first, then the reservation let go: an admission in between sees more, never less
        pipe.expire(spent_key, s.period_ttl)
        pipe.incrby(spent_key, s.cost)
        n += 2
        if s.reserved:
            pipe.decrby(reserved_key, s.reserved)
            n += 1
    return n


class RedisCounters:
    def __init__(self, url: str) -> None:
        # No `socket_timeout`: redis-py enforces it with `asyncio.wait_for` (a task per send); one
        # `asyncio.timeout` around each call bounds it as well for a fraction of the cost.
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT, retry_on_timeout=False)
        self._script = self._redis.register_script(_ADMIT)
        self._down_until = 0.0
        self._queued: list[Settlement] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def _check_circuit(self) -> None:
        if time.monotonic() < self._down_until:
            raise CountersUnavailable("redis marked down")

    def _trip(self, exc: Exception) -> CountersUnavailable:
        self._down_until = time.monotonic() + COOL_DOWN
        return CountersUnavailable(type(exc).__name__)

    async def admit(self, ask: Ask) -> Verdict:
        self._check_circuit()
        args: list[str | int] = [
            int(time.time() * 1000),
            ask.rpm or 0,
            ask.tpm or 0,
            ask.tokens,
            ask.concurrency or 0,
            ask.lease,
            -1 if ask.budget is None else ask.budget,
            ask.reserve,
            int(WINDOW * 1000),
            int(LEASE_SECONDS * 1000),
            RESERVATION_TTL,
        ]
        keys = redis_keys(ask.key, ask.period)
        queued = self._take()
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                reply = await (self._admit_after(queued, keys, args) if queued else self._eval(keys, args))
        except (RedisError, OSError, TimeoutError) as exc:
            self._lost(len(queued))
            raise self._trip(exc) from exc
        refused, used_req, used_tok, _, spent, retry = reply
        name = refused.decode() if isinstance(refused, bytes) else str(refused)
        return Verdict(
            refused=name or None,
            requests_used=int(used_req),
            tokens_used=int(used_tok),
            spent=int(spent),
            retry_after=float(retry) / 1000,
        )

    async def _eval(self, keys: list[str], args: list[str | int]) -> Any:
        """The admission script alone (a plain command: cheaper than a pipeline of one)."""
        try:
            return await self._redis.evalsha(self._script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted or flushed its scripts: load it again
            return await self._script(keys=keys, args=args)

    async def _admit_after(self, queued: list[Settlement], keys: list[str], args: list[str | int]) -> Any:
        """Queued settlements, then the admission script, in one pipeline (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        counts = [_queue_settlement(pipe, s) for s in queued]
        pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        self._report(queued, counts, replies)
        reply = replies[-1]
        if isinstance(reply, NoScriptError):
            return await self._script(keys=keys, args=args)
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def settle(self, s: Settlement) -> None:
        if not (s.tpm or s.concurrency or s.budget):
            return  # nothing held (a key with a request rate only)
        if len(self._queued) >= MAX_QUEUED:
            del self._queued[0]
            self._lost(1)
        self._queued.append(s)
        if self._writer is None or self._writer.done():
            # Its own empty context: the task outlives the request that happened to start it.
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), context=contextvars.Context())
        self._wake.set()

    async def flush(self) -> None:
        while self._queued:
            await self._write(self._take())

    def _take(self) -> list[Settlement]:
        taken, self._queued = self._queued, []
        return taken

    async def _write_loop(self) -> None:
        """Write queued settlements, one pipeline per batch, until closed. Each batch lingers a moment first: a
        round trip costs ~0.1 ms of CPU (mostly the kernel's), and under load the next admission carries the
        batch for free."""
        while not self._closing:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(LINGER)
            self._wake.clear()
            await self.flush()

    async def _write(self, batch: list[Settlement]) -> None:
        try:
            self._check_circuit()
            pipe = self._redis.pipeline(transaction=False)
            counts = [_queue_settlement(pipe, s) for s in batch]
            async with asyncio.timeout(SOCKET_TIMEOUT):
                replies = await pipe.execute()
        except CountersUnavailable:
            self._lost(len(batch))
            return
        except (RedisError, OSError, TimeoutError) as exc:
            self._lost(len(batch))
            self._trip(exc)
            return
        self._report(batch, counts, replies)

    @staticmethod
    def _report(batch: list[Settlement], counts: list[int], replies: list[Any]) -> None:
        """Tell each budget settlement the period's spend after its debit."""
        at = 0
        for s, n in zip(batch, counts, strict=True):
            at += n
            if s.budget and s.on_spent is not None:
                spent = replies[at - (2 if s.reserved else 1)]  # INCRBY's reply, before a DECRBY's
                if not isinstance(spent, Exception):
                    s.on_spent(int(spent))

    @staticmethod
    def _lost(n: int) -> None:
        if n:
            COUNTER_STORE_ERRORS.labels("settle_lost").inc(n)

    async def seed_spend(self, key: str, period: str, spent: int, ttl: int) -> None:
        self._check_circuit()
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                await self._redis.set(redis_keys(key, period)[3], spent, nx=True, ex=ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._trip(exc) from exc

    async def aclose(self) -> None:
        """Write what is still queued, stop the writer, close the connections."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        await self.flush()
        await self._redis.aclose()
