"""Responses stream events → Anthropic stream events (docs/mapping.md, Streaming): a pure state machine.

`feed(event)` returns the Anthropic events one upstream event produces, `finish()` those owed when the upstream
stream ends, `fail(error)` the in-band error for a transport failure. The grammar is enforced here, not hoped for:
one `message_start` first, one block open at a time, indexes contiguous from 0, exactly one `message_delta` +
`message_stop` on success, an `error` and nothing after it on failure.

Upstream events are matched to their output item by `output_index` alone, as OpenAI's own SDKs do; item ids are
data (GitHub Copilot gives every event of one item a different `item_id`). Items stream one after another: an event
for an item that already ended is an upstream fault, reported as an error rather than dropped. Content a server
sends only in a `.done` event (no deltas) is delivered from there. State is a handful of scalars plus the tool ids
already given, so memory per stream is bounded by its tool calls (the stop-sequence filter holds at most the
longest stop sequence).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import assert_never

import msgspec

from messages_bridge.errors import ApiError, GatewayError, UpstreamProtocolError, from_stream_error
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol import responses as r
from messages_bridge.protocol import responses_stream as rs
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import (
    check_finished,
    failure_of,
    message_id,
    output_item,
    parse_arguments,
    stop_details,
    stop_reason,
    thinking_text,
)
from messages_bridge.translate.signatures import encode_signature
from messages_bridge.translate.stops import StopSequenceFilter
from messages_bridge.translate.tokens import CHARS_PER_TOKEN
from messages_bridge.translate.tool_ids import ToolIds
from messages_bridge.translate.usage import empty_usage, to_anthropic_usage
from messages_bridge.translate.websearch import HostedSearches, citation

_ENCODER = msgspec.json.Encoder()

Out = list[o.StreamEvent]

TAIL_CHARS = 4096  # text kept to quote a citation's span, which arrives just after its text
HOLD_EVENTS = 4096  # events held back for a search's titles at most; beyond, they go out with URL-derived titles

_TRUNCATED = "The upstream stream ended before the response was complete"
_RAW_REASONING = -2  # the part key of raw `reasoning_text` (summary parts are keyed by their index)


class Item(IntEnum):
    """What the current output item is, which decides the block its content goes to."""

    NONE = 0  # no item yet
    MESSAGE = 1  # text blocks, one per content part
    REASONING = 2  # one thinking block, when the client asked for thinking
    TOOL = 3  # one tool_use block
    OTHER = 4  # an item type this gateway does not translate (its content events are not decoded)


# Module-level names for the members: an Enum member lookup costs ~90 ns on 3.11, and the hot path compares per event.
NO_ITEM, MESSAGE, REASONING, TOOL, OTHER = Item.NONE, Item.MESSAGE, Item.REASONING, Item.TOOL, Item.OTHER
_PART_KINDS = {"output_text": MESSAGE, "refusal": MESSAGE, "reasoning_text": REASONING}


def _kind_of(item: r.OutputItem | str) -> Item:
    match item:
        case r.MessageOutput():
            return MESSAGE
        case r.ReasoningOutput():
            return REASONING
        case r.FunctionCallOutput():
            return TOOL
        case _:
            return OTHER


def _interleaved() -> UpstreamProtocolError:
    return UpstreamProtocolError("The upstream stream sent content for an output item that had already ended")


def _mismatched(kind: Item, expected: Item) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"The upstream stream sent {expected.name.lower()} content for a {kind.name.lower()} output item"
    )


@dataclass(slots=True)
class StreamTranslator:
    """One stream's translation state. Read `done`, `error`, `stop_reason`, `usage`, `close_upstream` after feeding."""

    t: ReplyContext
    model: str
    input_tokens: int
    context_window: int = 0  # with `input_tokens`, words a context overflow as Anthropic does
    done: bool = field(default=False, init=False)
    close_upstream: bool = field(default=False, init=False)  # a stop sequence ended the message: stop reading
    error: GatewayError | None = field(default=None, init=False)
    stop_reason: a.StopReason | None = field(default=None, init=False)
    usage: a.Usage | None = field(default=None, init=False)
    started: bool = field(default=False, init=False)
    # the current output item
    _item: int = field(default=-1, init=False)  # its output_index
    _kind: Item = field(default=NO_ITEM, init=False)
    _part: int = field(default=-1, init=False)  # the content (or summary) part its deltas go to
    _parts_seen: bool = field(default=False, init=False)  # a part or delta arrived (else `.done` carries it all)
    _part_sent: bool = field(default=False, init=False)  # the current part received a delta
    _sent: bool = field(default=False, init=False)  # the open block received content (arguments, thinking)
    # the client's blocks
    _index: int = field(default=0, init=False)  # index of the open block, or of the next one
    _block_started: bool = field(default=False, init=False)  # text and thinking blocks start on their first content
    _chars: int = field(default=0, init=False)
    _refusal: str | None = field(default=None, init=False)
    _saw_tool: bool = field(default=False, init=False)
    _service_tier: str | None = field(default=None, init=False)
    _ids: ToolIds = field(default_factory=ToolIds, init=False)
    _streamed: hashlib._Hash = field(default_factory=hashlib.sha256, init=False)  # digest of the arguments sent
    _prefill: str = field(default="", init=False)
    _prefill_held: str = field(default="", init=False)
    _stops: StopSequenceFilter | None = field(default=None, init=False)
    # hosted web search (None without it)
    _searches: HostedSearches | None = field(default=None, init=False)
    _held: Out | None = field(default=None, init=False)  # events after a search result whose titles are not known yet
    _release: bool = field(default=False, init=False)
    _tail: str = field(default="", init=False)  # the last characters of the current text part (cited text)
    _tail_end: int = field(default=0, init=False)  # characters of the current text part so far

    def __post_init__(self) -> None:
        t = self.t
        self._prefill = t.prefill
        self._stops = StopSequenceFilter(t.stop_sequences) if t.stop_sequences else None
        if t.web_search is not None and t.web_search_mode == "hosted":
            self._searches = HostedSearches(t.web_search)

    # ---- public -------------------------------------------------------------------------------

    def feed(self, event: rs.StreamEvent) -> Out:
        """The Anthropic events for one upstream event (none once the stream is over)."""
        if self.done:
            return []
        out: Out = []
        holding = self._held is not None
        try:
            self._dispatch(event, out)
        except GatewayError as exc:
            self._error(exc, out)
        if self._held is None:
            return out
        if holding:
            self._held += out
            out = []
        if self._release or self.done or len(self._held) > HOLD_EVENTS:
            out += self._release_held()
        return out

    def _release_held(self) -> Out:
        """The held events, once the result lists they follow are filled in (see `HostedSearches`)."""
        held, self._held, self._release = self._held or [], None, False
        if self._searches is not None:
            self._searches.resolve()
        return held

    def finish(self) -> Out:
        """The upstream stream ended: without a terminal event that is an error, never a fake success."""
        return self.fail(ApiError(_TRUNCATED))

    def fail(self, error: GatewayError) -> Out:
        """An in-band error (transport failure, malformed upstream event) unless the stream is already over."""
        if self.done:
            return []
        out: Out = self._release_held() if self._held is not None else []
        self._error(error, out)
        return out

    @property
    def has_output(self) -> bool:
        """Whether any content (text, thinking, tool arguments) has been emitted: the first-token moment."""
        return self._chars > 0

    # ---- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, event: rs.StreamEvent, out: Out) -> None:
        # Deltas first: they are nearly every event and `match` tries the cases in order. Bare class patterns, fields
        # read in the body: keyword captures cost ~40 ns each per event.
        match event:
            case rs.TextDelta():
                if self._searches is not None:
                    self._tail = (self._tail + event.delta)[-TAIL_CHARS:]
                    self._tail_end += len(event.delta)
                if event.delta and self._text_target(event.output_index, event.content_index, out):
                    self._filtered(event.delta, out)
            case rs.ArgumentsDelta():
                # Obfuscation was not asked for: a server that sends it anyway (GitHub Copilot) may have encrypted
                # the delta itself, so its arguments are taken from the `.done` events instead.
                if event.delta and event.obfuscation is None and self._is_current(event.output_index, TOOL):
                    self._emit_arguments(event.delta, out)
            case rs.SummaryTextDelta():
                self._thinking_delta(event.output_index, event.summary_index, event.delta, out)
            case rs.ReasoningTextDelta():
                # One part whatever its content_index (vLLM numbers every delta): raw reasoning is one text.
                self._thinking_delta(event.output_index, _RAW_REASONING, event.delta, out)
            case rs.RefusalDelta():
                if event.delta and self._text_target(event.output_index, event.content_index, out):
                    self._refusal = (self._refusal or "") + event.delta  # refusals are short; `.done` has it whole
                    self._emit_text(event.delta, out)
            case rs.ResponseCreated():
                self._start(out, event.response)
            case rs.OutputItemAdded():
                self._item_added(event.output_index, output_item(event.item), out)
            case rs.OutputItemDone():
                self._item_done(event.output_index, output_item(event.item), out)
            case rs.ContentPartAdded():
                self._part_added(event.output_index, event.content_index, event.part.type, out)
            case rs.ContentPartDone():
                self._part_done(event.output_index, event.content_index, event.part, out)
            case rs.RefusalDone():
                self._refusal = event.refusal
            case rs.ArgumentsDone():
                if event.arguments and not self._sent and self._is_current(event.output_index, TOOL):
                    self._emit_arguments(event.arguments, out)  # only `.done` carried the arguments: one delta
            case rs.SummaryPartAdded():
                self._route(event.output_index, REASONING, out)
            case rs.ResponseCompleted():
                self._completed(event.response, out)
            case rs.ResponseFailed():
                raise self._failure(event.response) or ApiError("The upstream response failed")
            case rs.AnnotationAdded():
                self._annotation(event.output_index, event.annotation, out)
            case rs.StreamError():
                raise from_stream_error(
                    event.error_code,
                    event.error_message,
                    estimated_tokens=self.input_tokens,
                    context_window=self.context_window,
                )
            case _:
                assert_never(event)

    # ---- output items -------------------------------------------------------------------------

    def _is_current(self, index: int, kind: Item) -> bool:
        """Whether an event for output item `index` (-1: unnamed) of `kind` belongs to the current item.

        False for an item not announced yet; raises for an item that already ended, or a named item of another kind.
        """
        if index < 0:
            return self._kind is kind
        if index < self._item:
            raise _interleaved()
        if index > self._item or self._kind is NO_ITEM:
            return False
        if self._kind is not kind:
            raise _mismatched(self._kind, kind)
        return True

    def _route(self, index: int, kind: Item, out: Out) -> bool:
        """Make `index` the current item, starting it when no `output_item.added` announced it; False once done."""
        if self._is_current(index, kind):
            return True
        self._enter(index if index >= 0 else self._item + 1, kind, out)
        return not self.done

    def _enter(self, index: int, kind: Item, out: Out) -> None:
        self._new_block(out)
        self._item, self._kind, self._part, self._parts_seen, self._part_sent = index, kind, -1, False, False

    def _item_added(self, index: int, item: r.OutputItem | str, out: Out) -> None:
        kind = _kind_of(item)
        index = index if index >= 0 else self._item + 1
        if index < self._item:
            raise _interleaved()
        if index == self._item and self._kind is not NO_ITEM:
            if self._kind is not kind:
                raise _mismatched(self._kind, kind)
            return  # announced again (or after its first content): nothing new
        self._enter(index, kind, out)
        if isinstance(item, r.FunctionCallOutput) and not self.done:
            self._saw_tool = True
            name = self.t.tool_names.get(item.name, item.name)
            self._begin(out, o.ToolUseShell(self._ids.client_id(item.call_id, index), name))

    def _item_done(self, index: int, item: r.OutputItem | str, out: Out) -> None:
        kind = _kind_of(item)
        if not self._is_current(index, kind):
            self._item_added(index, item, out)  # never announced: everything it has is in this event
            if self.done:
                return
        match item:
            case r.FunctionCallOutput(arguments=arguments):
                self._end_arguments(arguments, out)
            case r.ReasoningOutput() if self.t.thinking_requested:
                self._end_thinking(item, out)
            case r.MessageOutput(content=parts):
                if not self._parts_seen:
                    self._whole_message(parts, out)
                self._close(out)
                if self._searches is not None and self._searches.pending:
                    self._searches.resolve([n for p in parts if isinstance(p, r.OutputText) for n in p.annotations])
                    self._release = True
            case r.WebSearchCallOutput() if self._searches is not None:
                self._on_search(item, out)
            case _:
                pass
        self._close(out)

    def _on_search(self, item: r.WebSearchCallOutput, out: Out) -> None:
        """A finished hosted search: its `server_tool_use` now, its result (and what follows) once titled."""
        searches = self._searches
        blocks = searches.on_call(item) if searches is not None else None
        if blocks is None:
            return
        use, result = blocks
        self._close(out)
        self._start(out)
        index = self._index
        out.append(o.ContentBlockStart(index, o.ServerToolUseShell(use["id"], use["name"])))
        if use["input"]:
            out.append(o.ContentBlockDelta(index, o.InputJsonDelta(_ENCODER.encode(use["input"]).decode())))
        out.append(o.ContentBlockStop(index))
        shell = o.WebSearchResultShell(result["tool_use_id"], result["content"])
        events: Out = [o.ContentBlockStart(index + 1, shell), o.ContentBlockStop(index + 1)]
        self._index += 2
        if self._held is None and isinstance(result["content"], list):
            self._held = events  # the content list is filled in when the answer's citations are known
        else:
            out += events

    def _annotation(self, index: int, ann: r.Annotation, out: Out) -> None:
        """A citation of text already sent: it goes on the open text block (the block of its text part)."""
        searches = self._searches
        if searches is None or ann.type != "url_citation" or not ann.url or not searches.options.permits(ann.url):
            return
        if self._kind is not MESSAGE or self._part < 0 or index not in (-1, self._item):
            return
        self._begin(out, o.TextShell())
        offset = self._tail_end - len(self._tail)
        cited = self._tail[max(ann.start_index - offset, 0) : max(ann.end_index - offset, 0)]
        out.append(o.ContentBlockDelta(self._index, o.CitationsDelta(citation(ann.url, ann.title, cited))))

    def _whole_message(self, parts: list[r.OutputText | r.Refusal], out: Out) -> None:
        """A message item whose parts arrived only in its `output_item.done`."""
        for n, part in enumerate(parts):
            if self.done or not self._text_part(self._item, n, out):
                return
            if isinstance(part, r.Refusal):
                self._refusal_part(part.refusal, out)
            elif part.text:
                self._filtered(part.text, out)

    # ---- text ---------------------------------------------------------------------------------

    def _part_added(self, index: int, part: int, part_type: str, out: Out) -> None:
        kind = _PART_KINDS.get(part_type, OTHER)
        if kind is OTHER or (index == self._item and self._kind not in (kind, NO_ITEM)):
            return  # a part shell carries no content; a mismatched one (early vLLM) changes nothing
        if kind is REASONING:
            self._route(index, kind, out)
        elif self._text_part(index, part, out) and part_type == "refusal":
            self._refusal_part("", out)

    def _refusal_part(self, text: str, out: Out) -> None:
        """A refusal part starts (empty) or arrives whole; the last one is the explanation, as non-streaming."""
        self._refusal = text
        self._begin(out, o.TextShell())  # a refusal is a block even when empty, as non-streaming
        if text:
            self._emit_text(text, out)

    def _text_part(self, index: int, part: int, out: Out) -> bool:
        """Start content part `part` of message item `index`: a new part is a new block."""
        if not self._route(index, MESSAGE, out):
            return False
        self._parts_seen = True
        if part != self._part:
            self._new_block(out)
            self._part, self._part_sent = part, False
            self._tail, self._tail_end = "", 0
        return not self.done

    def _text_target(self, index: int, part: int, out: Out) -> bool:
        """Direct a text delta to the current part of message item `index`.

        Only a `content_part.added` starts a new part: some servers (vLLM) number every delta differently.
        """
        moved = self._kind is not MESSAGE or (index != self._item and index >= 0)  # rarely: the common case is not
        if moved and not self._route(index, MESSAGE, out):
            return False
        if self._part < 0:
            self._part = part
        self._parts_seen = self._part_sent = True
        return True

    def _part_done(self, index: int, part: int, shape: rs.PartShape | None, out: Out) -> None:
        if index not in (-1, self._item) or self._kind is not MESSAGE or part != self._part:
            return  # a part of another item or kind ends nothing here (the item's own `.done` closes it)
        if not self._part_sent and shape is not None:  # the server sent this part's text only here
            if shape.type == "refusal" and shape.refusal:
                self._refusal_part(shape.refusal, out)
            elif shape.type == "output_text" and shape.text:
                self._filtered(shape.text, out)
        if not self.done:
            self._close(out)
            self._part = -1  # ended: a late citation has no block to go on

    def _emit_text(self, text: str, out: Out) -> None:
        if not self._block_started:
            self._begin(out, o.TextShell())
        self._chars += len(text)
        out.append(o.ContentBlockDelta(self._index, o.TextDelta(text)))

    def _filtered(self, text: str, out: Out) -> None:
        """Text through the prefill strip and the stop-sequence filter; a stop match ends the message."""
        if self._prefill:
            text = self._strip_prefill(text)
            if not text:
                return
        if self._stops is None:
            self._emit_text(text, out)
            return
        safe = self._stops.feed(text)
        if safe:
            self._emit_text(safe, out)
        if self._stops.matched is not None:
            self._stop_at_sequence(self._stops.matched, out)

    def _strip_prefill(self, text: str) -> str:
        """Hold text back until it is known whether it repeats the prefill (first block only, as non-streaming)."""
        held = self._prefill_held + text
        prefill = self._prefill
        if len(held) < len(prefill) and prefill.startswith(held):
            self._prefill_held = held
            return ""
        self._prefill, self._prefill_held = "", ""
        return held[len(prefill) :] if held.startswith(prefill) else held

    def _flush_text(self, out: Out) -> None:
        if self._prefill and self._prefill_held:
            held, self._prefill, self._prefill_held = self._prefill_held, "", ""
            self._filtered(held, out)
        if self._stops is not None and (held := self._stops.flush()):
            self._emit_text(held, out)

    def _stop_at_sequence(self, sequence: str, out: Out) -> None:
        """A stop sequence matched: end the message now with estimated usage; the caller closes the upstream."""
        self._kind = NO_ITEM  # nothing may follow the cut text, not even held-back characters
        if self._block_started:
            out.append(o.ContentBlockStop(self._index))
            self._index += 1
        self._block_started = False
        usage = empty_usage(input_tokens=self.input_tokens, output_tokens=max(1, self._chars // CHARS_PER_TOKEN))
        reason = stop_reason(None, None, refusal=self._refusal is not None, stop_sequence=True, tool_use=self._saw_tool)
        self._end(reason, sequence, usage, out)
        self.close_upstream = True

    # ---- thinking and tool arguments -----------------------------------------------------------

    def _thinking_delta(self, index: int, part: int, delta: str, out: Out) -> None:
        if not delta or not self._route(index, REASONING, out) or not self.t.thinking_requested:
            return
        if part != self._part:
            if self._sent:
                self._emit_thinking("\n\n", out)  # the non-streaming path joins parts the same way
            self._part = part
        self._emit_thinking(delta, out)

    def _emit_thinking(self, text: str, out: Out) -> None:
        if not self._block_started:
            self._begin(out, o.ThinkingShell())
        self._sent = True
        self._chars += len(text)
        out.append(o.ContentBlockDelta(self._index, o.ThinkingDelta(text)))

    def _end_thinking(self, item: r.ReasoningOutput, out: Out) -> None:
        if not self._sent and (text := thinking_text(item)):
            self._emit_thinking(text, out)  # the upstream sent the text only in the done item
        if item.encrypted_content:
            # The signature carries the reasoning across turns, so the block exists even with an empty summary.
            self._begin(out, o.ThinkingShell())
            signature = encode_signature(item.id, item.encrypted_content)
            out.append(o.ContentBlockDelta(self._index, o.SignatureDelta(signature)))

    def _end_arguments(self, arguments: str, out: Out) -> None:
        """The final arguments: sent now if no delta carried them, else checked against what the deltas sent."""
        has_input = parse_arguments(arguments)  # invalid JSON is an upstream fault → error event
        if not self._sent:
            if has_input:  # `{}` needs no delta: the shell has it
                self._emit_arguments(arguments, out)
        elif arguments and self._streamed.digest() != hashlib.sha256(arguments.encode()).digest():
            raise UpstreamProtocolError("The upstream's streamed tool arguments differ from its final ones")

    def _emit_arguments(self, arguments: str, out: Out) -> None:
        if not self._sent:
            self._streamed = hashlib.sha256()
        self._streamed.update(arguments.encode())  # to check against the final arguments without holding them
        self._sent = True
        self._chars += len(arguments)
        out.append(o.ContentBlockDelta(self._index, o.InputJsonDelta(arguments)))

    # ---- message and block framing ----------------------------------------------------------------

    def _start(self, out: Out, response: r.Response | None = None) -> None:
        if self.started:
            return
        self.started = True
        response_id = ""
        if response is not None:
            self._service_tier, response_id = response.service_tier, response.id
        self._ids.response_id = response_id
        usage = empty_usage(input_tokens=self.input_tokens)
        usage["service_tier"] = "priority" if self._service_tier == "priority" else "standard"
        message: a.Message = {
            "id": message_id(response_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(o.MessageStart(message))

    def _new_block(self, out: Out) -> None:
        """Close the open block; the next one starts with the next content."""
        self._close(out)
        if self.done:  # text flushed by the close hit a stop sequence
            return
        self._start(out)
        if self._index:
            self._prefill = ""  # the prefill repeats only at the very start of the message, as non-streaming
        self._sent = False

    def _begin(self, out: Out, shell: o.BlockShell) -> None:
        if not self._block_started:
            out.append(o.ContentBlockStart(self._index, shell))
            self._block_started = True

    def _close(self, out: Out) -> None:
        if self._kind is MESSAGE:
            self._flush_text(out)
        if self._block_started:
            out.append(o.ContentBlockStop(self._index))
            self._index += 1
            self._block_started = False

    # ---- terminal -----------------------------------------------------------------------------

    def _completed(self, response: r.Response, out: Out) -> None:
        check_finished(response, estimated_tokens=self.input_tokens, context_window=self.context_window)
        self._start(out, response)
        self._close(out)
        if self.done:  # a stop sequence matched in the text flushed by the close
            return
        incomplete = response.incomplete_details.reason if response.incomplete_details else None
        refusal, tool_use = self._refusal is not None, self._saw_tool
        reason = stop_reason(response.status, incomplete, refusal=refusal, stop_sequence=False, tool_use=tool_use)
        usage = to_anthropic_usage(response.usage, service_tier=response.service_tier)
        if self._searches is not None:
            usage["server_tool_use"] = {"web_search_requests": self._searches.count}
        self._end(reason, None, usage, out)

    def _end(self, reason: a.StopReason, sequence: str | None, usage: a.Usage, out: Out) -> None:
        body = o.MessageDeltaBody(reason, sequence)
        if reason == "refusal":
            body.stop_details = stop_details(self._refusal)
        out.append(o.MessageDelta(body, usage))
        out.append(o.MessageStop())
        self.stop_reason, self.usage, self.done = reason, usage, True

    def _error(self, error: GatewayError, out: Out) -> None:
        out.append(o.ErrorEvent(o.ErrorDetail(error.error_type, error.message)))
        self.error, self.done = error, True

    def _failure(self, response: r.Response) -> GatewayError | None:
        return failure_of(response, estimated_tokens=self.input_tokens, context_window=self.context_window)
