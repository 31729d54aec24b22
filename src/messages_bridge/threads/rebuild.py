"""Pure request surgery for threads: read the `thread` field, fingerprint the fixed fields, splice a stored thread
into a complete request, and apply `tool_addition` / `tool_removal` blocks to the tools. No I/O.

Message content stays raw JSON throughout: a thread holds what the client sent and what the gateway answered,
byte for byte, and the rebuilt request is decoded and validated by the ordinary path like any other.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from messages_bridge.errors import InvalidRequestError, validation_message
from messages_bridge.threads.errors import ThreadUnsupportedRequestError

FIXED_FIELDS = ("output_config", "output_format")
_TOOL_CHANGE = re.compile(rb'"tool_(?:addition|removal)"')  # searched in raw JSON without copying it
_NULL = b"null"


class CreateThread(Struct, tag_field="type", tag="create", forbid_unknown_fields=True):
    pass


class ContinueThread(Struct, tag_field="type", tag="continue", forbid_unknown_fields=True):
    previous_message_id: str


class ThreadView(Struct, kw_only=True):
    """The parts of a request body a thread needs, the rest left undecoded."""

    thread: CreateThread | ContinueThread | None = None
    messages: list[Raw] | UnsetType = UNSET
    system: Raw | UnsetType = UNSET
    tools: Raw | UnsetType = UNSET
    output_config: Raw | UnsetType = UNSET
    output_format: Raw | UnsetType = UNSET


_VIEW = msgspec.json.Decoder(ThreadView)
_TOP = msgspec.json.Decoder(dict[str, Raw])
_ENCODER = msgspec.json.Encoder()
_SORTED = msgspec.json.Encoder(order="sorted")


def may_thread(body: bytes) -> bool:
    """Cheap pre-check: only a body with a `"thread"` string in it can carry a thread."""
    return b'"thread"' in body


def read_view(body: bytes) -> ThreadView:
    try:
        return _VIEW.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(validation_message(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequestError("Invalid JSON in request body") from exc


def given(raw: Raw | UnsetType) -> Raw | UnsetType:
    """`null` counts as absent."""
    return UNSET if isinstance(raw, UnsetType) or bytes(raw) == _NULL else raw


def canonical_digest(raw: Raw | UnsetType) -> str:
    """A digest of a JSON value that ignores key order and whitespace; "" when absent."""
    value = given(raw)
    if isinstance(value, UnsetType):
        return ""
    return hashlib.sha256(_SORTED.encode(msgspec.json.decode(value))).hexdigest()[:32]


def fingerprint(view: ThreadView) -> dict[str, str]:
    return {name: canonical_digest(getattr(view, name)) for name in FIXED_FIELDS}


def changed_fields(stored: dict[str, str], current: dict[str, str]) -> list[str]:
    return [name for name in FIXED_FIELDS if stored.get(name, "") != current.get(name, "")]


def same_json(a: Raw | UnsetType, b: Raw | UnsetType) -> bool:
    return canonical_digest(a) == canonical_digest(b)


def has_tool_changes(messages: list[Raw]) -> bool:
    """Whether any message holds a `tool_addition` / `tool_removal` block (a scan: done once per message)."""
    return any(_TOOL_CHANGE.search(m) for m in messages)


def complete_body(
    body: bytes,
    *,
    messages: list[Raw],
    system: Raw | UnsetType,
    tools: Raw | UnsetType,
    force: bool,
    has_changes: bool,
) -> bytes:
    """`body` with the whole conversation, the thread's `system` and `tools`, tool changes applied, no `thread`.

    Without `force` and without tool changes, `body` is already complete and comes back as is.
    """
    if not force and not has_changes:
        return body
    if has_changes:
        tools, messages = apply_tool_changes(tools, messages)
    top = _TOP.decode(body)
    top.pop("thread", None)
    top["messages"] = Raw(_ENCODER.encode(messages))
    for name, value in (("system", system), ("tools", tools)):
        if isinstance(value, UnsetType):
            top.pop(name, None)
        else:
            top[name] = value
    return _ENCODER.encode(top)


# ---- tool_addition / tool_removal ----------------------------------------------------------------------------------


def apply_tool_changes(tools: Raw | UnsetType, messages: list[Raw]) -> tuple[Raw | UnsetType, list[Raw]]:
    """The tools offered at the end of the conversation, and the messages without the tool-change blocks.

    A `role: "system"` message's `tool_addition` / `tool_removal` blocks change the tools from that point on;
    the upstream takes one tool list per request, so the last state is what it gets (earlier calls of a removed
    tool stay in the history as they are).
    """
    present = given(tools)
    declared: list[dict[str, Any]] = [] if isinstance(present, UnsetType) else msgspec.json.decode(present)
    if not isinstance(declared, list):
        raise InvalidRequestError("tools: Input should be a valid list")
    by_name = {t.get("name"): t for t in declared if isinstance(t, dict)}
    offered = dict(by_name)
    out: list[Raw] = []
    for i, raw in enumerate(messages):
        if not _TOOL_CHANGE.search(raw):
            out.append(raw)
            continue
        message = msgspec.json.decode(raw)
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or message.get("role") != "system":
            out.append(raw)  # a tool change anywhere else is an ordinary (invalid) block: the normal path says so
            continue
        kept = []
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_addition":
                _add(offered, by_name, block, f"messages.{i}.content.{j}")
            elif kind == "tool_removal":
                _remove(offered, block, f"messages.{i}.content.{j}")
            else:
                kept.append(block)
        if kept:
            out.append(Raw(_ENCODER.encode({**message, "content": kept})))
    new_tools = Raw(_ENCODER.encode(list(offered.values()))) if offered or declared else UNSET
    return new_tools, out


def _reference(block: dict[str, Any], where: str) -> dict[str, Any]:
    tool = block.get("tool")
    if not isinstance(tool, dict):
        raise InvalidRequestError(f"{where}.tool: Field required")
    kind = tool.get("type")
    if kind not in ("tool_reference", "tool_definition"):
        raise ThreadUnsupportedRequestError(f"{where}.tool: tool changes of type {str(kind)[:64]!r} are not supported")
    return tool


def _add(offered: dict[Any, Any], declared: dict[Any, Any], block: dict[str, Any], where: str) -> None:
    tool = _reference(block, where)
    if tool["type"] == "tool_definition":
        definition = tool.get("definition")
        if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
            raise InvalidRequestError(f"{where}.tool.definition: a tool definition with a `name` is required")
        offered[definition["name"]] = definition
        return
    name = tool.get("name")
    if name not in offered and name not in declared:
        raise InvalidRequestError(f"{where}.tool.name: no tool named {str(name)[:128]!r} is declared in `tools`")
    offered.setdefault(name, declared.get(name))


def _remove(offered: dict[Any, Any], block: dict[str, Any], where: str) -> None:
    tool = _reference(block, where)
    name = tool.get("name")
    if tool["type"] != "tool_reference" or name not in offered:
        raise InvalidRequestError(f"{where}.tool: `tool_removal` names no tool offered at that point")
    del offered[name]
