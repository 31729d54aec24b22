"""The `ThreadStore` interface and the thread record it holds.

A thread is stored under the id of its head (its latest reply). Continuing takes a lease on the head; committing
the next reply is a compare-and-set (the head is still that id and the lease is still ours) that stores the thread
under the new id and leaves a tombstone under the old one, so a second continue of it is told apart from an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import msgspec
from msgspec import UNSET, Raw, UnsetType

IDLE_SECONDS = 300.0  # a thread expires 5 minutes after its last stored reply (each one restarts the clock)
LEASE_SECONDS = 900.0  # a crashed or vanished request frees its thread at the latest after this
# Both bounds together keep every thread's content well inside the one hour after its last use.


class StoredThread(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thread: the create's `system` and the current `tools`, the fixed fields' digests, the conversation.

    Messages stay raw JSON in Anthropic form, replies exactly as they were returned (thinking signatures, tool ids).
    """

    tenant: str
    head: str
    fingerprint: dict[str, str]
    messages: list[Raw]
    system: Raw | UnsetType = UNSET
    tools: Raw | UnsetType = UNSET
    created: float
    updated: float
    turns: int = 0
    tool_changes: bool = False  # some message holds tool_addition / tool_removal (saves rescanning the history)

    def size(self) -> int:
        """Bytes of conversation held (what the per-thread and total bounds count)."""
        fixed = sum(len(r) for r in (self.system, self.tools) if isinstance(r, Raw))
        return fixed + sum(map(len, self.messages)) + len(self.messages)


class Refusal(Enum):
    """Why a continue cannot take its head."""

    NOT_FOUND = "not_found"
    ALREADY_CONTINUED = "already_continued"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True, slots=True)
class Limits:
    idle: float = IDLE_SECONDS
    lease: float = LEASE_SECONDS
    max_thread_bytes: int = 32 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024


class ThreadStore(Protocol):
    """Where threads live. Every method is keyed by tenant: one tenant never reaches another's threads."""

    async def acquire(self, tenant: str, message_id: str, lease: str) -> StoredThread | Refusal:
        """Lease the thread whose head is `message_id`, or say why not."""

    async def release(self, tenant: str, message_id: str, lease: str) -> None:
        """Give the lease back (the turn failed): `message_id` stays the head."""

    async def commit(self, thread: StoredThread, *, previous: str | None, lease: str | None) -> bool:
        """Store `thread` under `thread.head`; with `previous`, only if it is still the head and leased by `lease`.

        False when nothing was stored (the compare-and-set failed, the thread is over its byte bound, or the store
        is unreachable).
        """

    async def aclose(self) -> None: ...
