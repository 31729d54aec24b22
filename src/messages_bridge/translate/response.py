"""OpenAI `Response` → Anthropic `Message` (pure; the rules are listed in docs/mapping.md, Answers and Usage)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from messages_bridge.errors import ApiError, GatewayError, UpstreamProtocolError, from_stream_error
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.signatures import encode_signature
from messages_bridge.translate.stops import find_stop
from messages_bridge.translate.tool_ids import ToolIds
from messages_bridge.translate.usage import to_anthropic_usage
from messages_bridge.translate.websearch import HostedSearches, citations_for

FINISHED = frozenset({"completed", "incomplete"})  # the statuses a final answer may have (failures raise)
_STATUS_WORD = re.compile(r"[a-z_]{1,32}")  # a status is quoted back only when it is a plain word


def message_id(response_id: str) -> str:
    """`msg_` + the upstream id's suffix, so one id can be traced across both APIs."""
    return "msg_" + (response_id.split("_", 1)[1] if "_" in response_id else response_id or "bridge")


def parse_arguments(arguments: str) -> object:
    """Tool arguments as an object; invalid JSON is an upstream fault, never silently `{}`."""
    if not arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError as exc:
        raise ApiError("The upstream model produced tool arguments that are not valid JSON") from exc
    if not isinstance(value, dict):
        raise ApiError("The upstream model produced tool arguments that are not a JSON object")
    return value


def output_item(raw: msgspec.Raw | bytes) -> r.OutputItem | str:
    """One upstream output item, decoded; one this gateway cannot use faithfully is the upstream's fault (502)."""
    try:
        item = r.decode_output_item(raw)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"The upstream sent an invalid output item: {exc}") from exc
    if isinstance(item, r.FunctionCallOutput) and not item.name:
        raise UpstreamProtocolError("The upstream sent a function call without a name")
    return item


def thinking_text(item: r.ReasoningOutput) -> str:
    """A reasoning item's text for a thinking block: its summary parts, then its raw `reasoning_text`, as paragraphs."""
    texts = [s.text for s in item.summary]
    texts.append("".join(c.text for c in item.content or () if c.type == "reasoning_text"))
    return "\n\n".join(t for t in texts if t)


def thinking_block(item: r.ReasoningOutput) -> a.ThinkingOut | None:
    """The thinking block of a reasoning item (the signature carries it to the next turn), or None when empty.

    Reasoning without `encrypted_content` (LM Studio, some models) still shows: its signature is empty, so the
    next turn drops it, as it would any thinking block the gateway did not sign.
    """
    thinking = thinking_text(item)
    if not thinking and not item.encrypted_content:
        return None
    signature = encode_signature(item.id, item.encrypted_content) if item.encrypted_content else ""
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def check_finished(response: r.Response, *, estimated_tokens: int = 0, context_window: int = 0) -> None:
    """Raise for a response that is not a finished answer: failed, cancelled, or still in progress (or no status)."""
    if (failure := failure_of(response, estimated_tokens=estimated_tokens, context_window=context_window)) is not None:
        raise failure
    if response.status not in FINISHED:
        status = response.status
        named = f"status '{status}'" if status is not None and _STATUS_WORD.fullmatch(status) else "no known status"
        raise UpstreamProtocolError(f"The upstream answered with an unfinished response ({named})")


@dataclass(slots=True)
class _Collected:
    content: list[a.ContentOut]
    refusal: str | None = None
    stop_sequence: str | None = None
    saw_tool: bool = False
    prefill_checked: bool = False
    searches: HostedSearches | None = None


def _add_cited(out: _Collected, part: r.OutputText, t: ReplyContext) -> None:
    """A text part and, with web search, its citations (on the part's block, as the stream attaches them)."""
    before = len(out.content)
    _add_text(out, part.text, t)
    if out.searches is None or not part.annotations or len(out.content) == before:
        return
    block = out.content[-1]
    if block["type"] == "text" and (citations := citations_for(part.text, part.annotations, out.searches.options)):
        block["citations"] = citations


def _add_text(out: _Collected, text: str, t: ReplyContext) -> None:
    if out.stop_sequence is not None:
        return
    if not out.content and t.prefill and text and not out.prefill_checked:
        out.prefill_checked = True  # the model repeats the prefill at most once, at the very start
        if text.startswith(t.prefill):
            text = text[len(t.prefill) :]
    if t.stop_sequences and (hit := find_stop(text, t.stop_sequences)):
        text, out.stop_sequence = text[: hit[0]], hit[1]
    if text:
        out.content.append({"type": "text", "text": text})


def _add_message(out: _Collected, parts: list[r.OutputText | r.Refusal], t: ReplyContext) -> None:
    for part in parts:
        if out.stop_sequence is not None:
            return  # nothing after a stop sequence reaches the client, not even a later part
        if isinstance(part, r.Refusal):
            out.refusal = part.refusal
            out.content.append({"type": "text", "text": part.refusal})
        else:
            _add_cited(out, part, t)


def _collect(response: r.Response, t: ReplyContext) -> _Collected:
    out = _Collected(content=[])
    ids = ToolIds(response.id)
    if t.web_search is not None and t.web_search_mode == "hosted":
        out.searches = HostedSearches(t.web_search)
    for index, raw in enumerate(response.output):
        item = output_item(raw)
        if out.stop_sequence is not None:
            break  # nothing after a stop sequence reaches the client
        match item:
            case r.ReasoningOutput() if t.thinking_requested:
                if (block := thinking_block(item)) is not None:
                    out.content.append(block)
            case r.MessageOutput(content=parts):
                if out.searches is not None:
                    out.searches.resolve([n for p in parts if isinstance(p, r.OutputText) for n in p.annotations])
                _add_message(out, parts, t)
            case r.WebSearchCallOutput() if out.searches is not None:
                if (blocks := out.searches.on_call(item)) is not None:
                    out.content.extend(blocks)
            case r.FunctionCallOutput(call_id=call_id, name=name, arguments=arguments):
                out.saw_tool = True
                tool: a.ToolUseOut = {
                    "type": "tool_use",
                    "id": ids.client_id(call_id, index),
                    "name": t.tool_names.get(name, name),
                    "input": parse_arguments(arguments),
                }
                out.content.append(tool)
            case _:
                pass  # reasoning the client did not ask for; unknown hosted-tool items (none are requested)
    if out.searches is not None:
        out.searches.resolve()
    return out


def stop_reason(
    status: str | None, incomplete_reason: str | None, *, refusal: bool, stop_sequence: bool, tool_use: bool
) -> a.StopReason:
    """The first matching rule wins (docs/mapping.md, Answers)."""
    if status == "incomplete" and incomplete_reason == "content_filter":
        return "refusal"
    if status == "incomplete":
        return "max_tokens"
    if refusal:
        return "refusal"
    if stop_sequence:
        return "stop_sequence"
    return "tool_use" if tool_use else "end_turn"


def stop_details(refusal: str | None) -> a.StopDetails:
    """`stop_details` of a refusal (the upstream gives no category)."""
    return {"type": "refusal", "category": None, "explanation": refusal}


def failure_of(response: r.Response, *, estimated_tokens: int = 0, context_window: int = 0) -> GatewayError | None:
    """A failed (or cancelled) response is an error, never a message (context sizes word an overflow)."""
    if response.status in ("failed", "cancelled"):
        code, message = (response.error.code, response.error.message) if response.error else (None, None)
        return from_stream_error(code, message, estimated_tokens=estimated_tokens, context_window=context_window)
    return None


def to_anthropic_message(
    response: r.Response, t: ReplyContext, *, model: str, estimated_tokens: int = 0, context_window: int = 0
) -> a.Message:
    """Translate a completed or incomplete `Response`; raise the mapped error for a failed or unfinished one."""
    check_finished(response, estimated_tokens=estimated_tokens, context_window=context_window)
    out = _collect(response, t)
    incomplete = response.incomplete_details.reason if response.incomplete_details else None
    reason = stop_reason(
        response.status,
        incomplete,
        refusal=out.refusal is not None,
        stop_sequence=out.stop_sequence is not None,
        tool_use=out.saw_tool,
    )
    message: a.Message = {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": out.content,
        "stop_reason": reason,
        "stop_sequence": out.stop_sequence,
        "usage": to_anthropic_usage(response.usage, service_tier=response.service_tier),
    }
    if out.searches is not None:
        message["usage"]["server_tool_use"] = {"web_search_requests": out.searches.count}
    if reason == "refusal":
        message["stop_details"] = stop_details(out.refusal)
    return message
