"""Key pools: a conversation sticks to one key (100 turns), conversations spread over the keys, a rejected or
out-of-quota key is benched and its conversations move on, a 429 with retry-after benches until then; keys are
logged by index, never by value."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from messages_bridge.demo.server import Reply
from messages_bridge.routing.keypool import KeyPool
from tests.conftest import FakeUpstream
from tests.observability.helpers import capture_logs
from tests.routing.conftest import HELLO

Make = Callable[..., Any]
KEYS = [f"sk-pool-key-{i}-abcdefghijklmnop" for i in range(4)]
__all__ = ["capture_logs"]


def pooled(fakes: dict[str, FakeUpstream], *, fallback: bool = False) -> str:
    keys = ", ".join(KEYS)
    second = f"  b: {{base_url: '{fakes['b'].base_url}'}}\n" if fallback else ""
    targets = "[a/gpt-5, b/gpt-5]" if fallback else "[a/gpt-5]"
    return f"upstreams:\n  a: {{base_url: '{fakes['a'].base_url}', api_keys: [{keys}]}}\n{second}" + (
        f"routes:\n  - {{match: '*', targets: {targets}}}\n"
    )


def turn(user: str, text: str = "Hi") -> dict[str, Any]:
    return HELLO | {"metadata": {"user_id": user}, "messages": [{"role": "user", "content": text}]}


def keys_used(fake: FakeUpstream) -> list[int]:
    return [KEYS.index(r.headers["authorization"].removeprefix("Bearer ")) for r in fake.script.received]


async def test_one_conversation_stays_on_one_key_for_100_turns(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(pooled(fakes))
    for i in range(100):
        assert (await gateway.post(turn("user-alice", f"turn {i}"))).status_code == 200
    assert len(set(keys_used(fakes["a"]))) == 1


async def test_conversations_spread_over_the_keys(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(pooled(fakes))
    for i in range(80):
        assert (await gateway.post(turn(f"user-{i}"))).status_code == 200
    spread = Counter(keys_used(fakes["a"]))
    assert set(spread) == {0, 1, 2, 3}
    assert min(spread.values()) >= 8  # 80 conversations over 4 keys: none starved


async def test_without_user_id_the_client_key_is_the_conversation(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(pooled(fakes))
    for _ in range(10):
        assert (await gateway.post(headers={"x-api-key": "client-one"})).status_code == 200
    assert len(set(keys_used(fakes["a"]))) == 1


async def test_a_rejected_key_is_benched_and_its_conversations_move(
    routed: Make, fakes: dict[str, FakeUpstream], capture_logs: Any
) -> None:
    gateway = await routed(pooled(fakes))
    logs = capture_logs(gateway.state.settings)
    assert (await gateway.post(turn("user-bob"))).status_code == 200
    home = keys_used(fakes["a"])[0]
    fakes["a"].script.push(Reply(status=401, json_body={"error": {"message": f"Incorrect API key {KEYS[home]}"}}))
    assert (await gateway.post(turn("user-bob"))).status_code == 200  # the next key answers
    for _ in range(5):
        assert (await gateway.post(turn("user-bob"))).status_code == 200
    used = keys_used(fakes["a"])
    assert used[:2] == [home, home]
    assert len(set(used[2:])) == 1 and used[2] != home  # moved, and sticks to its new key
    assert gateway.state.router.upstreams["a"].keys.benched() == [home]
    benched = [r for r in logs.records() if r["event"] == "upstream key benched"]
    assert benched == [benched[0]] and benched[0]["key_index"] == home and benched[0]["reason"] == "rejected"
    assert all(key not in logs.text for key in KEYS)


async def test_429_with_retry_after_benches_the_key_until_then(
    routed: Make, fakes: dict[str, FakeUpstream], capture_logs: Any
) -> None:
    gateway = await routed(pooled(fakes))
    logs = capture_logs(gateway.state.settings)
    assert (await gateway.post(turn("user-carol"))).status_code == 200
    home = keys_used(fakes["a"])[0]
    limited = Reply(
        status=429,
        json_body={"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
        headers={"retry-after": "30"},
    )
    fakes["a"].script.push(limited)
    assert (await gateway.post(turn("user-carol"))).status_code == 200
    pool = gateway.state.router.upstreams["a"].keys
    assert pool.benched() == [home]
    benched = [r for r in logs.records() if r["event"] == "upstream key benched"]
    assert [(r["key_index"], r["reason"], r["bench_seconds"]) for r in benched] == [(home, "rate_limited", 30)]


async def test_all_keys_resting_fails_over_to_the_next_target(routed: Make, fakes: dict[str, FakeUpstream]) -> None:
    gateway = await routed(pooled(fakes, fallback=True))
    quota = Reply(status=429, json_body={"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}})
    fakes["a"].script.push(*[quota] * 4)
    assert (await gateway.post(turn("user-dave"))).status_code == 200
    assert sorted(keys_used(fakes["a"])) == [0, 1, 2, 3]  # each key once, never the same twice
    assert len(fakes["b"].requests) == 1
    assert (await gateway.post(turn("user-dave"))).status_code == 200
    assert len(fakes["a"].requests) == 4 and len(fakes["b"].requests) == 2  # a's keys rest: straight to b


def test_benching_one_key_moves_only_its_conversations() -> None:
    now = [0.0]
    pool = KeyPool("a", 4, clock=lambda: now[0])
    homes = {f"c{i}": pool.order(f"c{i}")[0] for i in range(200)}
    pool.bench(2, 10, "rejected")
    moved = {c for c, home in homes.items() if pool.order(c)[0] != home}
    assert moved == {c for c, home in homes.items() if home == 2}
    now[0] = 9.9  # still resting
    assert 2 not in pool.order("c0") and pool.benched() == [2]
    now[0] = 10.0  # rested: everyone is back home
    assert all(pool.order(c)[0] == home for c, home in homes.items())


async def test_when_every_key_rests_the_client_gets_the_upstreams_own_answer(
    routed: Make, fakes: dict[str, FakeUpstream]
) -> None:
    gateway = await routed(
        f"upstreams:\n  a: {{base_url: '{fakes['a'].base_url}', api_keys: [{KEYS[0]}]}}\n"
        "routes:\n  - {match: '*', targets: [a/gpt-5]}\n"
    )
    rejected = Reply(status=401, json_body={"error": {"message": "Incorrect API key", "code": "invalid_api_key"}})
    fakes["a"].script.push(rejected, rejected)
    for _ in range(2):
        reply = await gateway.post()
        assert reply.status_code == 401 and reply.json()["error"]["type"] == "authentication_error"
    assert len(fakes["a"].requests) == 2  # the resting key is still asked: no vague 529 instead of the real cause
    assert (await gateway.post()).status_code == 200  # and a key that works again is used again


async def test_a_routing_file_key_quoted_by_the_upstream_never_reaches_the_client(
    routed: Make, fakes: dict[str, FakeUpstream], config_path: Any
) -> None:
    """Keys not shaped like `sk-…` (Azure's) are blanked because the gateway knows them, reloads included."""
    first, second = "azurekey0123456789abcdef0001", "azurekey0123456789abcdef0002"
    config = f"upstreams:\n  a: {{kind: azure, base_url: '{fakes['a'].base_url}', api_keys: [{first}]}}\n"
    config += "routes:\n  - {match: '*', targets: [a/gpt-5]}\n"
    gateway = await routed(config)
    for key in (first, second):
        if key == second:
            config_path(config.replace(first, second))
            assert gateway.app.state.reloader.reload()
        fakes["a"].script.push(Reply(status=400, json_body={"error": {"message": f"Bad request for key {key}"}}))
        reply = await gateway.post()
        assert reply.status_code == 400
        assert key not in reply.text and reply.json()["error"]["message"] == "Bad request for key ***"
