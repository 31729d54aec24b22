"""The one entry point the routes use: open a thread turn from a request body, then complete or abandon it.

`open()` answers every thread rejection before anything reaches the upstream. A `continue` leases its head, checks
the fixed fields, and becomes a complete request; a `create` is stored only with its reply. `ThreadTurn.complete()`
stores the reply by compare-and-set; `abandon()` (error, cut stream, refusal) stores nothing and frees the head.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from msgspec import Raw, UnsetType
from msgspec.structs import replace

from messages_bridge.errors import GatewayError, InvalidRequestError
from messages_bridge.observability.record import RequestRecord
from messages_bridge.threads.errors import (
    THREADS_OFF_MESSAGE,
    ThreadAlreadyContinuedError,
    ThreadContinueInFlightError,
    ThreadFingerprintMismatchError,
    ThreadNotFoundError,
    ThreadUnsupportedRequestError,
)
from messages_bridge.threads.rebuild import (
    ContinueThread,
    ThreadView,
    changed_fields,
    complete_body,
    fingerprint,
    given,
    has_tool_changes,
    read_view,
    same_json,
)
from messages_bridge.threads.reply import new_message_id
from messages_bridge.threads.store import Refusal, StoredThread, ThreadStore

Outcome = Literal["created", "continued", "replayed"]
_ASSISTANT = re.compile(rb'"role"\s*:\s*"assistant"')


@dataclass(slots=True)
class ThreadTurn:
    """One threaded request: its complete body for the stateless path, and how its reply is stored."""

    store: ThreadStore
    body: bytes
    base: StoredThread  # the thread as it will be stored, minus the reply
    record: RequestRecord  # the request's access record: how the turn went
    previous: str | None = None
    lease: str | None = None
    settled: bool = False

    @property
    def reply_id(self) -> str:
        return self.base.head

    async def complete(self, reply: Raw | None) -> bool:
        """Store the reply (None: an empty one, nothing to add) and move the head to it; False if not stored."""
        if self.settled:
            return False
        self.settled = True
        messages = [*self.base.messages, reply] if reply is not None else self.base.messages
        thread = replace(self.base, messages=messages, updated=time.time(), turns=self.base.turns + 1)
        stored = await self.store.commit(thread, previous=self.previous, lease=self.lease)
        if not stored and self.previous is not None and self.lease is not None:
            await self.store.release(thread.tenant, self.previous, self.lease)
        self.record.thread_stored = stored
        self.record.thread_turns = thread.turns
        self.record.thread_bytes = thread.size()
        return stored

    async def abandon(self) -> None:
        """The turn did not produce a complete reply: store nothing, the previous head stays continuable."""
        if self.settled:
            return
        self.settled = True
        self.record.thread_stored = False
        if self.previous is not None and self.lease is not None:
            await self.store.release(self.base.tenant, self.previous, self.lease)


class ThreadService:
    """Threads on or off, over one store."""

    def __init__(self, store: ThreadStore, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled

    async def open(self, body: bytes, tenant: str, record: RequestRecord) -> ThreadTurn | None:
        """The turn a request body asks for, or None when its `thread` is null (the ordinary stateless path).

        The outcome (created, continued, replayed, rejected) and the thread's size go on `record`.
        """
        view = read_view(body)
        if view.thread is None:
            return None
        try:
            if not self.enabled:
                raise ThreadUnsupportedRequestError(THREADS_OFF_MESSAGE)
            if isinstance(view.thread, ContinueThread):
                return await self._continue(body, view, view.thread.previous_message_id, tenant, record)
            return self._create(body, view, tenant, record)
        except GatewayError as exc:
            record.thread = "rejected"
            record.thread_error = _code(exc)
            raise

    async def aclose(self) -> None:
        await self.store.aclose()

    def _create(self, body: bytes, view: ThreadView, tenant: str, record: RequestRecord) -> ThreadTurn:
        messages = _messages(view)
        now = time.time()
        changes = has_tool_changes(messages)
        base = StoredThread(
            tenant=tenant,
            head=new_message_id(),
            fingerprint=fingerprint(view),
            messages=messages,
            system=given(view.system),
            tools=given(view.tools),
            created=now,
            updated=now,
            tool_changes=changes,
        )
        replayed = any(_ASSISTANT.search(m) for m in messages)  # a conversation resent after its thread was lost
        _note(record, "replayed" if replayed else "created", base)
        complete = complete_body(
            body, messages=messages, system=base.system, tools=base.tools, force=False, has_changes=changes
        )
        return ThreadTurn(self.store, complete, base, record)

    async def _continue(
        self, body: bytes, view: ThreadView, previous: str, tenant: str, record: RequestRecord
    ) -> ThreadTurn:
        lease = secrets.token_hex(16)
        found = await self.store.acquire(tenant, previous, lease)
        if isinstance(found, Refusal):
            raise _refused(found, previous)
        try:
            _check_fixed(found, view)
            new = _messages(view)
            changes = found.tool_changes or has_tool_changes(new)
            base = replace(found, head=new_message_id(), messages=[*found.messages, *new], tool_changes=changes)
            complete = complete_body(
                body, messages=base.messages, system=found.system, tools=found.tools, force=True, has_changes=changes
            )
        except BaseException:
            await self.store.release(tenant, previous, lease)
            raise
        _note(record, "continued", base)
        return ThreadTurn(self.store, complete, base, record, previous=previous, lease=lease)


def _messages(view: ThreadView) -> list[Raw]:
    return [] if isinstance(view.messages, UnsetType) else view.messages


def _check_fixed(thread: StoredThread, view: ThreadView) -> None:
    """`system` and `tools` belong to the create (a continue may repeat them unchanged); the fixed fields stay."""
    for name, stored, sent in (("system", thread.system, view.system), ("tools", thread.tools, view.tools)):
        if not isinstance(given(sent), UnsetType) and not same_json(stored, sent):
            raise InvalidRequestError(
                f"{name}: a thread keeps the `{name}` of its create; omit it on a continue"
                + (" and change tools with `tool_addition` / `tool_removal` blocks" if name == "tools" else "")
            )
    changed = changed_fields(thread.fingerprint, fingerprint(view))
    if changed:
        raise ThreadFingerprintMismatchError(changed)


def _refused(refusal: Refusal, previous: str) -> GatewayError:
    if refusal is Refusal.ALREADY_CONTINUED:
        return ThreadAlreadyContinuedError(previous)
    if refusal is Refusal.IN_FLIGHT:
        return ThreadContinueInFlightError(previous)
    return ThreadNotFoundError(previous)


def _code(error: GatewayError) -> str | None:
    code = (error.details or {}).get("error_code")
    return code if isinstance(code, str) else None


def _note(record: RequestRecord, outcome: Outcome, thread: StoredThread) -> None:
    record.thread = outcome
    record.thread_turns = thread.turns
    record.thread_bytes = thread.size()
