"""Tool definitions, tool_choice, and the reversible tool-name mapping (Anthropic ⇄ Responses)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import msgspec
from cachetools import LRUCache

from messages_bridge.errors import InvalidRequestError, validation_message
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r
from messages_bridge.translate.websearch import is_web_search

MAX_NAME = 64  # OpenAI function names: ^[a-zA-Z0-9_-]{1,64}$
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# Anthropic-defined client tools whose schema Anthropic owns: Claude-side clients execute them by name,
# so they become ordinary function tools with the schema the client expects.
_BASH_SCHEMA = msgspec.Raw(
    b'{"type":"object","properties":{"command":{"type":"string","description":"The bash command to run."},'
    b'"restart":{"type":"boolean","description":"Restart the tool."}}}'
)
_EDITOR_SCHEMA = msgspec.Raw(
    b'{"type":"object","properties":{"command":{"type":"string","enum":["view","create","str_replace","insert",'
    b'"undo_edit"]},"path":{"type":"string"},"file_text":{"type":"string"},"old_str":{"type":"string"},'
    b'"new_str":{"type":"string"},"insert_line":{"type":"integer"},"insert_text":{"type":"string"},'
    b'"view_range":{"type":"array","items":{"type":"integer"}}},"required":["command","path"]}'
)
_CLIENT_TOOL_SCHEMAS: dict[str, msgspec.Raw] = {"bash_": _BASH_SCHEMA, "text_editor_": _EDITOR_SCHEMA}
_EMPTY_SCHEMA = msgspec.Raw(b'{"type":"object","properties":{}}')


def upstream_name(name: str) -> str:
    """A name OpenAI accepts: unchanged when valid, else a deterministic `prefix_hash` form.

    Deterministic (no per-process table) so a tool_use replayed from an earlier turn maps to the same name.
    """
    if _VALID_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)
    return f"{cleaned[: MAX_NAME - 11]}_{digest}"


def name_map(tools: list[a.Tool] | None) -> dict[str, str]:
    """Upstream name → Anthropic name, for the tools whose name had to change."""
    return {upstream_name(t.name): t.name for t in tools or () if upstream_name(t.name) != t.name}


def is_strict_schema(schema: object) -> bool:
    """Whether OpenAI strict mode accepts the schema as is (all properties required, no extra properties)."""
    if isinstance(schema, list):
        return all(is_strict_schema(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    props = schema.get("properties")
    is_object = isinstance(props, dict) or schema.get("type") == "object"
    if is_object and schema.get("additionalProperties") is not False:
        return False
    required = schema.get("required", [])
    if isinstance(props, dict) and (not isinstance(required, list) or set(map(str, required)) != set(props)):
        return False
    return all(is_strict_schema(v) for k, v in schema.items() if k not in ("enum", "const", "default"))


def _client_tool_schema(tool_type: str) -> msgspec.Raw | None:
    for prefix, schema in _CLIENT_TOOL_SCHEMAS.items():
        if tool_type.startswith(prefix):
            return schema
    return None


def to_function_tool(tool: a.Tool) -> r.FunctionTool:
    """One Anthropic tool → one Responses function tool (server tools are rejected, never dropped)."""
    if tool.type in (None, "custom"):
        schema = tool.input_schema if isinstance(tool.input_schema, msgspec.Raw) else _EMPTY_SCHEMA
    else:
        client_schema = _client_tool_schema(tool.type)
        if client_schema is None:
            raise InvalidRequestError(
                f"tools: tool type '{tool.type}' ({tool.name}) is an Anthropic server tool that this gateway's "
                "upstream (OpenAI Responses API) cannot run; remove it from the request"
            )
        schema = client_schema
    out: r.FunctionTool = {
        "type": "function",
        "name": upstream_name(tool.name),
        "parameters": schema,
        # Always explicit: an omitted `strict` makes Responses try to coerce the schema into strict mode, which
        # rejects the optional properties Claude Code's tools have. A client's strict:true is honoured only when
        # the schema already satisfies OpenAI's strict rules (else the upstream would reject the request).
        "strict": bool(tool.strict) and is_strict_schema(msgspec.json.decode(schema)),
    }
    if tool.description:
        out["description"] = tool.description
    return out


@dataclass(frozen=True, slots=True)
class ToolSet:
    """One request's tool array, validated and translated: what every consumer of the tools needs.

    It holds nothing decoded from the request body (a decoded `Raw` would keep the whole body alive): the web
    search tool, the only one kept decoded, is re-decoded from its own bytes.
    """

    count: int  # tools in the array, web_search included
    upstream: msgspec.Raw  # the encoded `list[FunctionTool]` for the Responses request
    names: dict[str, str]  # upstream name → Anthropic name, for the tools whose name had to change
    chars: int  # names, descriptions and schemas, for the local token estimate
    web_search: a.Tool | None = None  # Anthropic's web_search server tool: translated per mode, not here

    def held_bytes(self) -> int:
        """About what the set keeps alive (its weight in the cache)."""
        names = sum(len(k) + len(v) for k, v in self.names.items())
        return len(self.upstream) + names + _SET_OVERHEAD


NO_TOOLS = ToolSet(0, msgspec.Raw(b"[]"), {}, 0)
_ENCODER = msgspec.json.Encoder()
_TOOL_DECODER = msgspec.json.Decoder(a.Tool)
_SET_OVERHEAD = 1024  # the objects around the bytes, and the web_search tool when there is one

# Claude Code sends one ~64 KB array per version and mode, so a few MiB keep every array a busy gateway sees; an
# array bigger than TOOL_SET_MAX_BYTES is translated for its request and not kept (it would evict many small ones).
TOOL_CACHE_BYTES = 4 * 1024 * 1024
TOOL_SET_MAX_BYTES = 512 * 1024
# The one cross-request cache of the translator: a tool array's `digest` → its ToolSet, least recently used first
# out, bounded by the bytes the sets hold (never the arrays': they are not kept). Only `tool_set` writes it.
TOOL_SETS: LRUCache[bytes, ToolSet] = LRUCache(TOOL_CACHE_BYTES, getsizeof=ToolSet.held_bytes)


@dataclass(slots=True)
class _LastArray:
    """The last cached array's bytes (a copy, no bigger than the set it gave, so kept only with a cached set) and its
    digest.

    Claude Code repeats one array request after request: comparing the bytes (a memcmp, ~2 µs for 64 KB) finds its
    key without hashing them again (SHA-256, ~30 µs). Equal bytes have equal digests, so the key found is the same.
    """

    array: bytes = b""
    key: bytes = b""

    def remember(self, array: bytes, key: bytes, tools: ToolSet) -> None:
        if len(array) <= tools.held_bytes():  # an array mostly of ignored fields would weigh more than its set
            self.array, self.key = array, key


_LAST = _LastArray()


def tool_set(raw: msgspec.Raw | msgspec.UnsetType) -> ToolSet:
    """The translated tool array; call it once per request and pass the result on.

    Arrays are kept across requests in a byte-bounded LRU keyed by a SHA-256 digest of their bytes (never the body
    they came in; only the last cached array's own bytes, to know a repeat without hashing it). The same bytes always
    give an equal ToolSet; invalid arrays raise each time.
    """
    if isinstance(raw, msgspec.UnsetType):
        return NO_TOOLS
    array = bytes(raw)  # a copy: decoded `Raw`s reference their buffer
    key = _LAST.key if array == _LAST.array else digest(raw)
    cached = TOOL_SETS.get(key)
    if cached is not None:
        _LAST.remember(array, key, cached)
        return cached
    built = _build_tool_set(array)
    if built.held_bytes() <= TOOL_SET_MAX_BYTES:
        TOOL_SETS[key] = built
        _LAST.remember(array, key, built)
    return built


def digest(raw: msgspec.Raw) -> bytes:
    """The cache key of a tool array: 32 bytes, whatever the array's size.

    SHA-256 (CPU-accelerated: ~33 µs for Claude Code's 64 KB, where BLAKE2b takes ~60 µs): a collision would hand one
    request another's tools, so the digest must be one nobody can collide.
    """
    return hashlib.sha256(raw).digest()


def _build_tool_set(raw: bytes) -> ToolSet:
    try:
        decoded = a.TOOLS_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(validation_message(exc, prefix="tools")) from exc
    if not decoded:
        return NO_TOOLS  # `"tools": null` or `[]`
    searches = [t for t in decoded if is_web_search(t)]
    if len(searches) > 1:
        raise InvalidRequestError("tools: at most one web_search tool may be given")
    functions = [t for t in decoded if not is_web_search(t)]
    upstream = msgspec.Raw(_ENCODER.encode([to_function_tool(t) for t in functions]))
    chars = sum(len(t.name) + len(t.description or "") + len(t.input_schema or b"") for t in decoded)
    search = _TOOL_DECODER.decode(_ENCODER.encode(searches[0])) if searches else None
    return ToolSet(len(decoded), upstream, name_map(functions), chars, search)


def to_tool_choice(choice: a.ToolChoice | None) -> tuple[r.ToolChoiceParam | None, bool | None]:
    """Anthropic tool_choice → (Responses tool_choice, parallel_tool_calls or None to leave the default)."""
    match choice:
        case None:
            return None, None
        case a.ToolChoiceAuto(disable_parallel_tool_use=serial):
            return "auto", False if serial else None
        case a.ToolChoiceAny(disable_parallel_tool_use=serial):
            return "required", False if serial else None
        case a.ToolChoiceTool(name=name, disable_parallel_tool_use=serial):
            return {"type": "function", "name": upstream_name(name)}, False if serial else None
        case _:
            return "none", None
