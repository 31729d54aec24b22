"""Which cores the target and the drivers run on, chosen from the cores this process may use."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CoreLayout:
    """The target's cores and the drivers' (fake upstream and load generator); both empty means no pinning."""

    target: frozenset[int]
    driver: frozenset[int]


def choose_cores(available: set[int] | None = None, *, target_workers: int = 1) -> CoreLayout:
    """Give the target one core per worker (the lowest allowed ones) and the drivers every other core.

    The drivers always keep at least one core of their own, so they never compete with the target for it; with a
    single usable core nothing can be separated and nothing is pinned.
    """
    cores = sorted(os.sched_getaffinity(0) if available is None else available)
    if len(cores) < 2:
        return CoreLayout(frozenset(), frozenset())
    split = min(max(1, target_workers), len(cores) - 1)
    return CoreLayout(frozenset(cores[:split]), frozenset(cores[split:]))
