"""The in-memory store: leases, compare-and-set, tombstones, tenants, expiry on a fake clock, byte bounds, LRU."""

from __future__ import annotations

from msgspec import Raw

from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.store import Limits, Refusal, StoredThread
from tests.threads.helpers import Clock


def thread(head: str, size: int = 10, tenant: str = "t") -> StoredThread:
    message = Raw(b'{"role":"user","content":"' + b"x" * size + b'"}')
    return StoredThread(tenant=tenant, head=head, fingerprint={}, messages=[message], created=0.0, updated=0.0)


async def test_a_head_is_leased_once_and_moves_by_compare_and_set() -> None:
    store = MemoryThreadStore()
    assert await store.commit(thread("m1"), previous=None, lease=None)
    got = await store.acquire("t", "m1", "lease-1")
    assert isinstance(got, StoredThread) and got.head == "m1"
    assert await store.acquire("t", "m1", "lease-2") is Refusal.IN_FLIGHT
    assert not await store.commit(thread("m2"), previous="m1", lease="lease-2")  # not our lease
    assert await store.commit(thread("m2"), previous="m1", lease="lease-1")
    assert await store.acquire("t", "m1", "lease-3") is Refusal.ALREADY_CONTINUED
    assert await store.acquire("t", "m2", "lease-3") != Refusal.NOT_FOUND
    await store.aclose()


async def test_tenants_never_see_each_other() -> None:
    store = MemoryThreadStore()
    await store.commit(thread("m1", tenant="a"), previous=None, lease=None)
    assert await store.acquire("b", "m1", "l") is Refusal.NOT_FOUND
    assert isinstance(await store.acquire("a", "m1", "l"), StoredThread)


async def test_release_keeps_the_head_continuable() -> None:
    store = MemoryThreadStore()
    await store.commit(thread("m1"), previous=None, lease=None)
    await store.acquire("t", "m1", "l1")
    await store.release("t", "m1", "other")  # someone else's lease: no effect
    assert await store.acquire("t", "m1", "l2") is Refusal.IN_FLIGHT
    await store.release("t", "m1", "l1")
    assert isinstance(await store.acquire("t", "m1", "l2"), StoredThread)


async def test_idle_expiry_restarts_with_each_stored_reply_and_a_lease_expires() -> None:
    clock = Clock()
    store = MemoryThreadStore(Limits(idle=300, lease=900), clock=clock)
    await store.commit(thread("m1"), previous=None, lease=None)
    clock.now += 299
    await store.acquire("t", "m1", "l1")
    clock.now += 200  # past the idle time, but leased: a long turn keeps its thread
    assert await store.commit(thread("m2"), previous="m1", lease="l1")
    clock.now += 299
    assert isinstance(await store.acquire("t", "m2", "l2"), StoredThread)
    clock.now += 901  # the lease of a vanished request runs out, and the idle time with it
    assert await store.acquire("t", "m2", "l3") is Refusal.NOT_FOUND
    store.sweep()
    assert len(store) == 0 and store.total_bytes == 0


async def test_the_sweep_drops_expired_threads_without_any_request() -> None:
    clock = Clock()
    store = MemoryThreadStore(Limits(idle=300), clock=clock)
    await store.commit(thread("m1"), previous=None, lease=None)
    await store.commit(thread("m2"), previous=None, lease=None)
    clock.now += 301
    store.sweep()
    assert len(store) == 0 and store.total_bytes == 0
    await store.aclose()


async def test_bytes_are_bounded_per_thread_and_in_total_least_recently_used_first() -> None:
    store = MemoryThreadStore(Limits(max_thread_bytes=2000, max_total_bytes=5000))
    assert not await store.commit(thread("big", size=3000), previous=None, lease=None)
    for i in range(4):
        assert await store.commit(thread(f"m{i}", size=1000), previous=None, lease=None)
    await store.acquire("t", "m0", "l")  # m0 is used: m1 is now the least recently used
    await store.release("t", "m0", "l")
    assert await store.commit(thread("m4", size=1000), previous=None, lease=None)
    assert store.total_bytes <= 5000
    assert await store.acquire("t", "m1", "l") is Refusal.NOT_FOUND  # evicted: the client replays
    assert isinstance(await store.acquire("t", "m0", "l"), StoredThread)
    assert store.evicted == 1
