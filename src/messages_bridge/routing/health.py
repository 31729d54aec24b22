"""Readiness of a routed gateway: each upstream's breaker state and reachability, and whether every route
still has a target that can serve."""

from __future__ import annotations

import asyncio

from messages_bridge.observability.metrics import note_breaker
from messages_bridge.routing.breaker import STATE_VALUES
from messages_bridge.routing.router import FileRouter, UpstreamRuntime


async def _reachable(upstream: UpstreamRuntime) -> bool:
    return await upstream.clients[0].ready()


async def readiness(router: FileRouter) -> tuple[bool, dict[str, dict[str, object]]]:
    """(ready, per-upstream report); probes run concurrently, each bounded by the client's probe timeout."""
    names = list(router.upstreams)
    reachable = await asyncio.gather(*(_reachable(router.upstreams[n]) for n in names))
    serving: dict[str, bool] = {}
    report: dict[str, dict[str, object]] = {}
    for name, up in zip(names, reachable, strict=True):
        breaker = router.upstreams[name].breaker
        state = breaker.state if breaker is not None else "closed"
        note_breaker(name, STATE_VALUES[state])
        keys = router.upstreams[name].keys
        usable = up and state != "open" and len(keys.benched()) < keys.size
        serving[name] = usable
        report[name] = {"breaker": state, "reachable": up, "keys": keys.size, "keys_benched": len(keys.benched())}
    routes_ok = all(any(serving[t.upstream.name] for t in targets) for targets in router.route_targets)
    return routes_ok and any(serving.values()), report
