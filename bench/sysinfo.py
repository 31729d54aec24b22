"""Linux process measurements from /proc, CPU pinning and event-loop setup (no psutil)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Set
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when it is installed; return whether it was."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the venv
        return False
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (utime + stime from /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # after "pid (comm) " the fields start at index 3 (state); utime is field 14, stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of one process in bytes; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def children(pid: int) -> list[int]:
    """All descendant pids of `pid` (uvicorn/litellm may run the app in a child process)."""
    found: list[int] = []
    frontier = [pid]
    while frontier and len(found) < 256:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            kids = (task / "children").read_text().split() if (task / "children").exists() else []
            found.extend(int(k) for k in kids)
            frontier.extend(int(k) for k in kids)
    return found


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    return [pid, *children(pid)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds summed over a process tree (processes that vanish mid-read count as 0)."""
    total = 0.0
    for p in tree(pid):
        try:
            total += cpu_seconds(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def tree_rss_bytes(pid: int) -> int:
    """VmRSS summed over a process tree."""
    return sum(rss_bytes(p) for p in tree(pid))


def pinning_preexec(cores: Set[int]) -> Callable[[], None] | None:
    """A Popen `preexec_fn` that pins the child (and so all its threads and children) to `cores` (none: no pinning).

    The cores come from `bench.cores.choose_cores`, which picks them among those this process may use.
    """
    if not cores:
        return None
    wanted = set(cores)

    def _pin() -> None:
        os.sched_setaffinity(0, wanted)

    return _pin


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll a zero-argument callable until it returns true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
