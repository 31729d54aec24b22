"""Anthropic Messages request → OpenAI Responses request (pure: no I/O, no logging, no config lookups).

Every rule applied here is listed, with its reason, in docs/mapping.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from messages_bridge.errors import InvalidRequestError
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r
from messages_bridge.translate.content import block_type, text_part, tool_result_output, user_parts
from messages_bridge.translate.signatures import decode_signature
from messages_bridge.translate.tools import ToolSet, is_strict_schema, to_tool_choice, upstream_name
from messages_bridge.translate.websearch import (
    FUNCTION_TOOL,
    WebSearchMode,
    WebSearchOptions,
    history_items,
    hosted_tool,
    policy_note,
)

MIN_OUTPUT_TOKENS = 16  # the Responses API rejects max_output_tokens below 16
NEW_API_VERSION = "2026-10-21"
# Claude Code's first system block is a per-conversation billing tag for Anthropic, not prompt text; it changes
# between conversations, so forwarding it would defeat the upstream's prefix cache.
_BILLING_HEADER = "x-anthropic-billing-header:"
_PREFILL_NOTE = (
    "Continue the previous assistant message exactly where it stops. Do not repeat any of it; output only "
    "the continuation."
)


@dataclass(frozen=True, slots=True)
class UpstreamProfile:
    """What the target upstream model accepts (from settings; resolved once per model name)."""

    model: str
    reasoning: bool = True
    sampling: bool = False
    disabled_effort: str | None = "minimal"
    # A capability profile (the routing file) lists the efforts the model has, lowest first; None passes the
    # requested effort through (the prefix settings). `max_output_tokens` clamps `max_tokens` when set.
    efforts: tuple[str, ...] | None = None
    max_output_tokens: int | None = None
    context_window: int = 400_000
    web_search: WebSearchMode = "off"  # how Anthropic's web_search tool is served for this model


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What translating the answer back needs from the request.

    Kept apart from the request body on purpose: a stream holds this to its last event, and it must not keep
    the whole translated conversation alive with it.
    """

    tool_names: dict[str, str] = field(default_factory=dict)
    stop_sequences: tuple[str, ...] = ()
    thinking_requested: bool = False
    prefill: str = ""
    web_search: WebSearchOptions | None = None  # the client offered web_search (options to enforce)
    web_search_mode: WebSearchMode = "off"


@dataclass(slots=True)
class Translation:
    """A translated request, the context for its answer, and what was left out (names and paths, logged at debug)."""

    body: r.ResponsesRequest
    reply: ReplyContext
    tools: ToolSet  # the request's tool array as translated once (the token estimate needs its size)
    ignored: list[str] = field(default_factory=list)


EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh")


def nearest_effort(requested: str, supported: tuple[str, ...]) -> str | None:
    """The supported effort closest to `requested` (a tie goes to the higher); `max` is the highest there is.

    `supported` is ordered lowest first (EFFORT_ORDER); an empty tuple means the model takes no reasoning.
    """
    if not supported:
        return None
    if requested == "max" or requested not in EFFORT_ORDER:
        return supported[-1]
    rank = EFFORT_ORDER.index(requested)
    return min(reversed(supported), key=lambda e: abs(EFFORT_ORDER.index(e) - rank))


def _no_thinking_effort(supported: tuple[str, ...]) -> str | None:
    """No thinking: `none` where the model has it, else its lowest effort."""
    if "none" in supported:
        return "none"
    return supported[0] if supported else None


def effort_for_budget(budget_tokens: int) -> str:
    """Thinking budget → reasoning effort ([policy] thresholds; a budget has no Responses counterpart)."""
    if budget_tokens < 4096:
        return "low"
    if budget_tokens < 16384:
        return "medium"
    return "high"


def _short_id(value: str) -> str:
    """call_id must be ≤ 64 chars; longer foreign ids are shortened deterministically so pairs still match."""
    if len(value) <= 64:
        return value
    return value[:47] + "_" + hashlib.sha256(value.encode()).hexdigest()[:16]


def _hashed_user(user_id: str) -> str:
    """Never forward the raw end-user id (Claude Code packs device and session ids into it)."""
    return "mb_" + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def _blocks(message: a.InputMessage) -> list[a.ContentBlock]:
    return [a.TextBlock(text=message.content)] if isinstance(message.content, str) else message.content


@dataclass(slots=True)
class _InputBuilder:
    """Walks messages in order, grouping consecutive parts into one message item."""

    profile: UpstreamProfile
    items: list[r.InputItem] = field(default_factory=list)
    _parts: list[r.InputPart] = field(default_factory=list)
    _role: str = ""

    def add_part(self, role: str, part: r.InputPart) -> None:
        if role != self._role:
            self.flush()
            self._role = role
        self._parts.append(part)

    def add_item(self, item: r.InputItem) -> None:
        self.flush()
        self.items.append(item)

    def flush(self) -> None:
        if not self._parts:
            return
        if self._role == "assistant":
            # String content: the only assistant form both the real API and the SDK's input types accept
            # (output_text parts are rejected by ResponseCreateParams, input_text by the live API). Adjacent text
            # blocks are split citations or continuations, so they join without a separator.
            text = "".join(p["text"] for p in self._parts if p["type"] == "input_text")
            self.items.append({"type": "message", "role": "assistant", "content": text})
        else:
            role: Literal["developer", "user"] = "developer" if self._role == "system" else "user"
            message: r.InputMessageItem = {"type": "message", "role": role, "content": self._parts}
            self.items.append(message)
        self._parts = []
        self._role = ""


def _add_user(builder: _InputBuilder, blocks: list[a.ContentBlock], where: str, expected: set[str]) -> None:
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        if isinstance(block, a.ToolResultBlock):
            if block.tool_use_id not in expected:
                raise InvalidRequestError(
                    f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {block.tool_use_id}. Each "
                    "`tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
            expected.discard(block.tool_use_id)
            output = tool_result_output(block, at)
            builder.add_item(
                {"type": "function_call_output", "call_id": _short_id(block.tool_use_id), "output": output}
            )
        else:
            for part in user_parts(block, at):
                builder.add_part("user", part)


def _add_system(builder: _InputBuilder, blocks: list[a.ContentBlock], where: str) -> None:
    for j, block in enumerate(blocks):
        if not isinstance(block, a.TextBlock):
            raise InvalidRequestError(f"{where}.content.{j}: system messages may only contain text blocks")
        builder.add_part("system", text_part(block.text))


def _reasoning_item(block: a.ThinkingBlock | a.RedactedThinkingBlock) -> r.ReasoningInputItem | None:
    signature = block.signature if isinstance(block, a.ThinkingBlock) else block.data
    ref = decode_signature(signature)
    if ref is None:
        return None  # minted by real Anthropic (or forged): OpenAI cannot use it
    summary: list[r.SummaryTextPart] = []
    if isinstance(block, a.ThinkingBlock) and block.thinking:
        summary = [{"type": "summary_text", "text": block.thinking}]
    item: r.ReasoningInputItem = {"type": "reasoning", "summary": summary, "encrypted_content": ref.ec}
    if ref.id:
        item["id"] = ref.id
    return item


def _add_assistant(builder: _InputBuilder, blocks: list[a.ContentBlock], where: str, notes: list[str]) -> set[str]:
    """Adds one assistant turn; returns the tool_use ids it opened."""
    opened: set[str] = set()
    pending_reasoning: list[r.ReasoningInputItem] = []
    searches: dict[str, a.ServerToolUseBlock] = {}
    for j, block in enumerate(blocks):
        match block:
            case a.TextBlock(text=text):
                builder.items.extend(pending_reasoning)
                pending_reasoning = []
                if text:
                    builder.add_part("assistant", text_part(text))
            case a.ToolUseBlock(id=call_id, name=name, input=args):
                builder.items.extend(pending_reasoning)
                pending_reasoning = []
                opened.add(call_id)
                arguments = bytes(args).decode() if args else "{}"
                if not arguments.lstrip().startswith("{"):
                    raise InvalidRequestError(f"{where}.content.{j}.tool_use.input: Input should be an object")
                fc: r.FunctionCallItem = {
                    "type": "function_call",
                    "call_id": _short_id(call_id),
                    "name": upstream_name(name),
                    "arguments": arguments,
                }
                builder.add_item(fc)
            case a.ThinkingBlock() | a.RedactedThinkingBlock():
                item = _reasoning_item(block) if builder.profile.reasoning else None
                if item is not None:
                    builder.flush()
                    pending_reasoning.append(item)
            case a.ServerToolUseBlock():
                builder.items.extend(pending_reasoning)
                pending_reasoning = []
                searches[block.id] = block
            case a.WebSearchToolResultBlock():
                use = searches.pop(block.tool_use_id, None)
                if use is None:
                    raise InvalidRequestError(
                        f"{where}.content.{j}: `web_search_tool_result` block has no `server_tool_use` block with "
                        f"id {block.tool_use_id} before it"
                    )
                for replayed in history_items(use, block, hosted=builder.profile.web_search == "hosted"):
                    builder.add_item(replayed)
            case _:
                kind = block_type(block)
                raise InvalidRequestError(
                    f"{where}.content.{j}: content block type '{kind}' is not allowed in assistant messages"
                )
    if searches:
        notes.append(f"{where}: server_tool_use without its result ({len(searches)})")
    # A reasoning item with nothing after it in its turn is rejected by OpenAI; it carries no answer anyway.
    return opened


def _check_answered(opened: set[str], where: str) -> None:
    if opened:
        ids = ", ".join(sorted(opened))
        raise InvalidRequestError(
            f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after: {ids}. Each "
            "`tool_use` block must have a corresponding `tool_result` block in the next message."
        )


def _translate_messages(
    messages: list[a.InputMessage], profile: UpstreamProfile, notes: list[str]
) -> tuple[list[r.InputItem], str]:
    """The `input` items, and the prefill text when the conversation ends on an assistant turn."""
    if not messages:
        raise InvalidRequestError("messages: at least one message is required")
    builder = _InputBuilder(profile)
    expected: set[str] = set()
    expected_from = ""
    last = len(messages) - 1
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        blocks = _blocks(message)
        if not blocks and not (i == last and message.role == "assistant"):
            raise InvalidRequestError(
                f"{where}: all messages must have non-empty content except for the optional final assistant message"
            )
        if message.role == "system":
            _add_system(builder, blocks, where)
        elif message.role == "user":
            _add_user(builder, blocks, where, expected)
            _check_answered(expected, expected_from)
            expected = set()
        else:
            _check_answered(expected, expected_from)
            expected, expected_from = _add_assistant(builder, blocks, where, notes), where
    builder.flush()
    prefill = ""
    if messages[last].role == "assistant":
        if expected:
            _check_answered(expected, expected_from)
        prefill = "".join(b.text for b in _blocks(messages[last]) if isinstance(b, a.TextBlock))
        if prefill:
            builder.items.append({"type": "message", "role": "developer", "content": [text_part(_PREFILL_NOTE)]})
    return builder.items, prefill


def _instructions(system: str | list[a.TextBlock] | None) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system or None
    texts = [b.text for b in system if b.text and not b.text.startswith(_BILLING_HEADER)]
    return "\n\n".join(texts) or None


def _reasoning(
    req: a.CountTokensRequest | a.MessagesRequest, profile: UpstreamProfile, tools: ToolSet
) -> tuple[r.ReasoningParam | None, bool]:
    """The `reasoning` parameter, and whether the client asked for thinking blocks."""
    thinking = req.thinking
    requested = isinstance(thinking, a.ThinkingEnabled | a.ThinkingAdaptive)
    if not profile.reasoning:
        return None, requested
    effort: str | None = req.output_config.effort if req.output_config else None
    param: r.ReasoningParam = {}
    if isinstance(thinking, a.ThinkingEnabled):
        effort = effort or effort_for_budget(thinking.budget_tokens)
    elif thinking is None or isinstance(thinking, a.ThinkingDisabled | a.ThinkingBetweenTools):
        # No `thinking` means no extended thinking in Anthropic terms, so the same low effort as "disabled".
        if profile.efforts is not None and not effort:
            effort = _no_thinking_effort(profile.efforts)
        effort = effort or profile.disabled_effort
    if effort and profile.efforts is not None:
        effort = nearest_effort(effort, profile.efforts)
    if effort == "minimal" and profile.web_search == "hosted" and tools.web_search is not None:
        effort = "low"  # the Responses API refuses hosted web_search with effort "minimal"
    if effort:
        param["effort"] = effort
    if requested and thinking is not None and getattr(thinking, "display", None) != "omitted":
        param["summary"] = "auto"
    return (param or None), requested


def _with_tool(tools: msgspec.Raw, tool: object) -> msgspec.Raw:
    """The encoded tool array with one more tool (the array itself is translated once and cached)."""
    encoded = _ENCODER.encode(tool)
    if bytes(tools) == b"[]":
        return msgspec.Raw(b"[" + encoded + b"]")
    return msgspec.Raw(bytes(tools)[:-1] + b"," + encoded + b"]")


def _add_tools(
    body: r.ResponsesRequest, req: a.CountTokensRequest | a.MessagesRequest, tools: ToolSet, profile: UpstreamProfile
) -> None:
    """Tools and tool_choice; Anthropic's web_search becomes the hosted tool or the gateway's function."""
    search = tools.web_search
    mode = profile.web_search if search is not None else "off"
    upstream = tools.upstream
    if search is not None and mode == "hosted":
        upstream = _with_tool(upstream, hosted_tool(WebSearchOptions.from_tool(search)))
    elif search is not None and mode == "gateway":
        upstream = _with_tool(upstream, FUNCTION_TOOL)
    if bytes(upstream) != b"[]":
        body["tools"] = upstream
    choice, parallel = to_tool_choice(req.tool_choice)
    if search is not None and isinstance(req.tool_choice, a.ToolChoiceTool) and req.tool_choice.name == search.name:
        choice = _search_choice(mode, only=tools.count == 1)
    if choice is not None and "tools" in body:
        body["tool_choice"] = choice
    if parallel is not None and "tools" in body:
        body["parallel_tool_calls"] = parallel
    if search is not None and mode != "off":
        options = WebSearchOptions.from_tool(search)
        if mode == "hosted":
            body["include"] = [*body["include"], "web_search_call.action.sources"]
            if options.max_uses is not None:
                body["max_tool_calls"] = max(options.max_uses, 1)  # web_search is the only built-in tool sent
        if (note := policy_note(options)) is not None:
            body["instructions"] = f"{body['instructions']}\n\n{note}" if "instructions" in body else note


def _search_choice(mode: WebSearchMode, *, only: bool) -> r.ToolChoiceParam | None:
    """Forcing web_search: Responses has no named choice for the hosted tool, so `required` (or allowed_tools)."""
    if mode == "gateway":
        return {"type": "function", "name": FUNCTION_TOOL["name"]}
    if mode == "hosted":
        return "required" if only else {"type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]}
    return None


def _text_format(output_config: a.OutputConfig | None) -> r.TextConfig | None:
    if output_config is None or output_config.format is None:
        return None
    schema = output_config.format.schema
    try:
        decoded = msgspec.json.decode(schema)
        strict = is_strict_schema(decoded)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:  # a Raw is not checked for UTF-8
        raise InvalidRequestError("output_config.format.schema: invalid JSON schema") from exc
    if not isinstance(decoded, dict):
        raise InvalidRequestError("output_config.format.schema: must be a JSON object")
    return {"format": {"type": "json_schema", "name": "output", "schema": schema, "strict": strict}}


def _sampling(
    req: a.MessagesRequest, body: r.ResponsesRequest, profile: UpstreamProfile, api_version: str
) -> list[str]:
    """Copies temperature/top_p where the model accepts them; returns the names it had to drop."""
    present = [n for n in ("temperature", "top_p", "top_k") if getattr(req, n) is not None]
    if present and api_version == NEW_API_VERSION:
        raise InvalidRequestError(f"{present[0]}: Extra inputs are not permitted")
    dropped = [n for n in present if n == "top_k" or not profile.sampling]
    if profile.sampling and req.temperature is not None:
        body["temperature"] = req.temperature
    if profile.sampling and req.top_p is not None:
        body["top_p"] = req.top_p
    return dropped


def _base_body(
    req: a.CountTokensRequest | a.MessagesRequest, tools: ToolSet, profile: UpstreamProfile, notes: list[str]
) -> tuple[r.ResponsesRequest, bool, str]:
    items, prefill = _translate_messages(req.messages, profile, notes)
    body: r.ResponsesRequest = {"model": profile.model, "input": items, "store": False, "include": []}
    if (instructions := _instructions(req.system)) is not None:
        body["instructions"] = instructions
    reasoning, requested = _reasoning(req, profile, tools)
    if reasoning is not None:
        body["reasoning"] = reasoning
    if profile.reasoning:
        # Stateless (store:false) replay of reasoning needs the encrypted content; non-reasoning models reject it.
        body["include"] = ["reasoning.encrypted_content"]
    if tools.count:
        _add_tools(body, req, tools, profile)
    if (text := _text_format(req.output_config)) is not None:
        body["text"] = text
    if req.speed == "fast":
        body["service_tier"] = "priority"
    return body, requested, prefill


def to_responses_request(
    req: a.MessagesRequest, tools: ToolSet, profile: UpstreamProfile, *, api_version: str
) -> Translation:
    """Translate a `POST /v1/messages` body (its tool array already translated: `tool_set`) for `POST /responses`."""
    notes: list[str] = []
    body, requested, prefill = _base_body(req, tools, profile, notes)
    ceiling = profile.max_output_tokens
    body["max_output_tokens"] = max(min(req.max_tokens, ceiling) if ceiling else req.max_tokens, MIN_OUTPUT_TOKENS)
    notes.extend(_sampling(req, body, profile, api_version))
    if req.metadata is not None and req.metadata.user_id:
        hashed = _hashed_user(req.metadata.user_id)
        body["safety_identifier"] = hashed
        body["prompt_cache_key"] = hashed
    if req.service_tier is not None and req.speed != "fast":
        body["service_tier"] = "auto" if req.service_tier == "auto" else "default"
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_obfuscation": False}
    stops = tuple(s for s in req.stop_sequences or () if s)
    search = WebSearchOptions.from_tool(tools.web_search) if tools.web_search is not None else None
    mode = profile.web_search if search is not None else "off"
    reply = ReplyContext(tools.names, stops, requested, prefill, search, mode)
    return Translation(body, reply, tools, notes)


_COUNT_KEYS = ("model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text")
_ENCODER = msgspec.json.Encoder()


def to_input_tokens_request(req: a.CountTokensRequest, tools: ToolSet, profile: UpstreamProfile) -> dict[str, object]:
    """Translate a `count_tokens` body for `POST /responses/input_tokens` (same mapping, fewer fields)."""
    body, _, _ = _base_body(req, tools, profile, [])
    return {k: v for k, v in body.items() if k in _COUNT_KEYS}
