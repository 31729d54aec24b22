"""The `tool_use.id` a client sees for each upstream function call: its `call_id` when usable, else a minted one.

Clients pair every `tool_result` with a `tool_use` by id, so an empty id, an id repeated within one answer, or one
Anthropic's id grammar (`[A-Za-z0-9_-]`, at most 64 here so it is also a valid `call_id`) would not take, never
reaches them: such a call gets `toolu_` + 24 hex digits of SHA-256(response id, output index, upstream id).
Deterministic, so the streaming and non-streaming paths give the same id for the same answer.

No table maps a minted id back: the gateway is stateless (`store: false`), and on the next turn it replays the
client's id as the `call_id` of both the `function_call` and its `function_call_output`, which is all the upstream
pairs on. So the minted id *is* the mapping, and it survives any number of turns and gateway restarts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

_USABLE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def minted_id(response_id: str, output_index: int, call_id: str) -> str:
    """The deterministic replacement for an unusable upstream `call_id`."""
    key = f"{response_id}\0{output_index}\0{call_id}".encode()
    return "toolu_" + hashlib.sha256(key).hexdigest()[:24]


@dataclass(slots=True)
class ToolIds:
    """One answer's tool ids: each usable upstream id once, a minted one for the rest."""

    response_id: str = ""
    _given: set[str] = field(default_factory=set)

    def client_id(self, call_id: str, output_index: int) -> str:
        given = self._given
        if call_id not in given and _USABLE.fullmatch(call_id):
            given.add(call_id)
            return call_id
        minted = minted_id(self.response_id, output_index, call_id)
        # Taken only if an upstream id imitates a minted one: of len(given) + 1 salted candidates one is free.
        for salt in range(len(given) + 1):
            if minted not in given:
                break
            minted = minted_id(self.response_id, output_index, f"{call_id}\0{salt}")
        given.add(minted)
        return minted
