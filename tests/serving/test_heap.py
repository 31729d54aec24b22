"""The server's garbage-collector settings (serving/heap.py), checked in a fresh interpreter: freezing the test
process's own heap would pin the other tests' garbage."""

from __future__ import annotations

import os
import subprocess
import sys

SETTLE = """
import gc, weakref
from messages_bridge.serving import heap

class Node:
    pass

garbage = Node()
garbage.self = garbage  # a reference cycle: only the collector frees it
gone = weakref.ref(garbage)
del garbage
heap.settle()
print(gone() is None, gc.get_freeze_count() > 1000, gc.get_threshold()[0] == heap.YOUNG_THRESHOLD)
"""

SERVED = """
import gc
from messages_bridge.serving import heap
import messages_bridge.app.asgi
print(gc.get_freeze_count() > 1000, gc.get_threshold()[0] == heap.YOUNG_THRESHOLD)
"""


def _run(code: str) -> str:
    env = {"PATH": os.environ.get("PATH", ""), "OPENAI_API_KEY": "sk-test"}  # the settings of a plain `serve`
    argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True, env=env, cwd=os.getcwd())
    return done.stdout.strip().splitlines()[-1]


def test_settle_collects_start_up_garbage_then_freezes_the_rest_and_raises_the_young_threshold() -> None:
    assert _run(SETTLE) == "True True True"


def test_the_served_app_is_settled_once_built() -> None:
    assert _run(SERVED) == "True True"
