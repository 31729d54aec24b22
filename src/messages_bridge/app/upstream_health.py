"""`/readyz` with a routing file: each upstream's breaker state and reachability, and whether every route still
has a target that can serve. Each upstream's probe is cached like the single upstream's (app/readiness.py)."""

from __future__ import annotations

import asyncio
import weakref

from messages_bridge.app.readiness import ReadinessProbe
from messages_bridge.observability.metrics import note_breaker
from messages_bridge.routing.breaker import STATE_VALUES
from messages_bridge.routing.router import FileRouter, UpstreamRuntime

_PROBES: weakref.WeakKeyDictionary[UpstreamRuntime, ReadinessProbe] = weakref.WeakKeyDictionary()


async def _reachable(upstream: UpstreamRuntime) -> bool:
    probe = _PROBES.get(upstream)
    if probe is None:
        probe = _PROBES[upstream] = ReadinessProbe(upstream.clients[0].ready)
    return await probe.ready()


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
        benched = len(keys.benched())
        serving[name] = up and state != "open" and benched < keys.size
        report[name] = {"breaker": state, "reachable": up, "keys": keys.size, "keys_benched": benched}
    routes_ok = all(any(serving[t.upstream.name] for t in targets) for targets in router.route_targets)
    return routes_ok and any(serving.values()), report
