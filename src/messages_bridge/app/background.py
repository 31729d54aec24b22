"""Work that outlives the request that started it (a finished stream's upstream drain, the shutdown hand-over).

One set of tasks for the whole app: asyncio keeps only weak references to tasks, so each is held here until done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_TASKS: set[asyncio.Task[None]] = set()


def spawn(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on the running loop, detached from the caller (its cancellation does not reach it)."""
    task = asyncio.get_running_loop().create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
