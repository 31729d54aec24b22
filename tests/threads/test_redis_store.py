"""The Redis store against a real redis-server on 127.0.0.1: the same semantics as the memory store, atomic across
clients, encrypted at rest (no plaintext in Redis's own dump), expired by Redis, and an outage costs a replay."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import pytest
from msgspec import Raw
from redis.asyncio import Redis

from messages_bridge.threads.redis import RedisThreadStore
from messages_bridge.threads.store import Limits, Refusal, StoredThread
from tests.services import RedisServer

CANARY = "canary-5d1e0c77-plaintext"
KEY = base64.b64encode(os.urandom(32)).decode()


def thread(head: str, tenant: str = "t", text: str = "hello") -> StoredThread:
    message = Raw(b'{"role":"user","content":"' + text.encode() + b'"}')
    return StoredThread(
        tenant=tenant,
        head=head,
        fingerprint={},
        messages=[message],
        system=Raw(b'"be brief"'),
        created=0.0,
        updated=0.0,
    )


def store_for(server: RedisServer, key: str = KEY, limits: Limits | None = None) -> RedisThreadStore:
    return RedisThreadStore.from_settings(server.url, key, limits or Limits())


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisThreadStore]:
    opened = store_for(redis_server)
    yield opened
    await opened.aclose()


async def test_leases_compare_and_set_and_tombstones(store: RedisThreadStore) -> None:
    assert await store.commit(thread("m1"), previous=None, lease=None)
    assert not await store.commit(thread("m1"), previous=None, lease=None)  # never overwrites a head
    got = await store.acquire("t", "m1", "l1")
    assert isinstance(got, StoredThread) and bytes(got.messages[0]) == b'{"role":"user","content":"hello"}'
    assert await store.acquire("t", "m1", "l2") is Refusal.IN_FLIGHT
    assert not await store.commit(thread("m2"), previous="m1", lease="l2")
    assert await store.commit(thread("m2"), previous="m1", lease="l1")
    assert await store.acquire("t", "m1", "l3") is Refusal.ALREADY_CONTINUED
    assert await store.acquire("other", "m2", "l3") is Refusal.NOT_FOUND
    await store.release("t", "m2", "nobody")
    assert isinstance(await store.acquire("t", "m2", "l3"), StoredThread)
    await store.release("t", "m2", "l3")
    assert isinstance(await store.acquire("t", "m2", "l4"), StoredThread)


async def test_only_one_of_many_concurrent_continues_wins(redis_server: RedisServer) -> None:
    stores = [store_for(redis_server) for _ in range(4)]  # four replicas, each its own connection pool
    assert await stores[0].commit(thread("m1"), previous=None, lease=None)
    results = await asyncio.gather(*(s.acquire("t", "m1", f"lease{i}") for i, s in enumerate(stores)))
    assert sum(isinstance(r, StoredThread) for r in results) == 1
    assert sum(r is Refusal.IN_FLIGHT for r in results) == 3
    for opened in stores:
        await opened.aclose()


async def test_redis_holds_only_ciphertext_even_in_its_dump(store: RedisThreadStore, redis_server: RedisServer) -> None:
    assert await store.commit(thread("m1", text=CANARY), previous=None, lease=None)
    raw = Redis.from_url(redis_server.url)
    keys = await raw.keys("mb:thr:*")
    assert keys == [b"mb:thr:{t}:m1"]
    value = await raw.get(keys[0])
    assert value is not None and CANARY.encode() not in value and b"be brief" not in value
    await raw.save()
    dump = (redis_server.directory / "dump.rdb").read_bytes()
    assert b"mb:thr:{t}:m1" in dump  # the thread is in the dump…
    assert CANARY.encode() not in dump and b"be brief" not in dump  # …as ciphertext only
    await raw.aclose()


async def test_expiry_is_set_on_each_stored_reply_and_enforced_by_redis(redis_server: RedisServer) -> None:
    store = store_for(redis_server, limits=Limits(idle=0.3, lease=60))
    raw = Redis.from_url(redis_server.url)
    assert await store.commit(thread("m1"), previous=None, lease=None)
    assert 0 < await raw.pttl("mb:thr:{t}:m1") <= 300
    await store.acquire("t", "m1", "l1")
    assert await raw.pttl("mb:thr:{t}:m1") > 300  # leased: kept for the turn's length
    assert await store.commit(thread("m2"), previous="m1", lease="l1")
    assert 0 < await raw.pttl("mb:thr:{t}:m2") <= 300  # the stored reply restarts the clock
    for _ in range(200):  # Redis itself removes it (bounded wait)
        if await raw.exists("mb:thr:{t}:m2") == 0:
            break
        await asyncio.sleep(0.05)
    assert await store.acquire("t", "m2", "l2") is Refusal.NOT_FOUND
    await raw.aclose()
    await store.aclose()


async def test_key_rotation_and_a_retired_key(redis_server: RedisServer) -> None:
    old = store_for(redis_server, KEY)
    assert await old.commit(thread("m1"), previous=None, lease=None)
    new_key = base64.b64encode(os.urandom(32)).decode()
    rotating = store_for(redis_server, f"{new_key},{KEY}")
    assert isinstance(await rotating.acquire("t", "m1", "l"), StoredThread)  # written with the old key
    assert await rotating.commit(thread("m2"), previous="m1", lease="l")
    retired = store_for(redis_server, new_key)  # after the rotation: the old key is gone
    assert isinstance(await retired.acquire("t", "m2", "l"), StoredThread)
    await retired.release("t", "m2", "l")
    assert await old.acquire("t", "m2", "l2") is Refusal.NOT_FOUND  # a key that does not know the value: replay
    for opened in (old, rotating, retired):
        await opened.aclose()


async def test_a_value_moved_to_another_id_does_not_decrypt(store: RedisThreadStore, redis_server: RedisServer) -> None:
    assert await store.commit(thread("m1"), previous=None, lease=None)
    raw = Redis.from_url(redis_server.url)
    value = await raw.get("mb:thr:{t}:m1")
    assert isinstance(value, bytes)
    await raw.set("mb:thr:{t}:m9", value)
    await raw.set("mb:thr:{x}:m1", value)
    assert await store.acquire("t", "m9", "l") is Refusal.NOT_FOUND
    assert await store.acquire("x", "m1", "l") is Refusal.NOT_FOUND
    await raw.aclose()


async def test_an_outage_is_a_replay_never_an_error(store: RedisThreadStore, redis_server: RedisServer) -> None:
    assert await store.commit(thread("m1"), previous=None, lease=None)
    redis_server.stop()
    assert await store.acquire("t", "m1", "l") is Refusal.NOT_FOUND
    assert not await store.commit(thread("m2"), previous=None, lease=None)
    await store.release("t", "m1", "l")
    redis_server.start()  # restarted empty (no persistence): the thread is gone, the store works again
    assert await store.acquire("t", "m1", "l") is Refusal.NOT_FOUND
    assert await store.commit(thread("m3"), previous=None, lease=None)
