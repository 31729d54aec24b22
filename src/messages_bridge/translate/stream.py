"""Responses stream events → Anthropic stream events (docs/mapping.md, Streaming): a pure state machine.

`feed(event)` returns the Anthropic events one upstream event produces, `finish()` those owed when the upstream
stream ends, `fail(error)` the in-band error for a transport failure. The grammar is enforced here, not hoped for:
one `message_start` first, one block open at a time, indexes contiguous from 0, exactly one `message_delta` +
`message_stop` on success, an `error` and nothing after it on failure. State is a handful of scalars, so memory
per stream is constant (the stop-sequence filter holds at most the longest stop sequence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from messages_bridge.errors import ApiError, GatewayError, from_stream_error
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol import responses as r
from messages_bridge.protocol import responses_stream as rs
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import failure_of, message_id, parse_arguments, stop_details, stop_reason
from messages_bridge.translate.signatures import encode_signature
from messages_bridge.translate.stops import StopSequenceFilter
from messages_bridge.translate.tokens import CHARS_PER_TOKEN
from messages_bridge.translate.usage import empty_usage, to_anthropic_usage
from messages_bridge.translate.websearch import HostedSearches, citation

_ENCODER = msgspec.json.Encoder()

Out = list[o.StreamEvent]

NONE: Final = 0
TEXT: Final = 1
THINKING: Final = 2
TOOL: Final = 3

TAIL_CHARS = 4096  # text kept to quote a citation's span, which arrives just after its text
HOLD_EVENTS = 4096  # events held back for a search's titles at most; beyond, they go out with URL-derived titles
_TRUNCATED = "The upstream stream ended before the response was complete"


class StreamTranslator:
    """One stream's translation state. Read `done`, `error`, `stop_reason`, `usage`, `close_upstream` after feeding."""

    __slots__ = (
        "_block_started", "_chars", "_held", "_index", "_open", "_open_item", "_part_index", "_prefill",
        "_prefill_held", "_refusal", "_release", "_saw_tool", "_searches", "_sent", "_service_tier", "_started",
        "_stops", "_summary_parts", "_t", "_tail", "_tail_end", "_window", "close_upstream", "done", "error",
        "input_tokens", "model", "stop_reason", "usage",
    )  # fmt: skip

    def __init__(self, t: ReplyContext, *, model: str, input_tokens: int, context_window: int = 0) -> None:
        self._t = t
        self._window = context_window  # with `input_tokens`, words a context overflow as Anthropic does
        self.model = model
        self.input_tokens = input_tokens
        self._started = False
        self._index = 0  # index of the open block, or of the next one
        self._open = NONE
        self._open_item = ""
        self._part_index = 0
        self._block_started = False  # text and thinking blocks start lazily, on their first content
        self._sent = False  # whether the open block received content (tool arguments, thinking text)
        self._summary_parts = 0
        self._refusal: str | None = None
        self._saw_tool = False
        self._prefill = t.prefill
        self._prefill_held = ""
        self._stops = StopSequenceFilter(t.stop_sequences) if t.stop_sequences else None
        self._service_tier: str | None = None
        self._chars = 0
        hosted = t.web_search is not None and t.web_search_mode == "hosted"
        self._searches = HostedSearches(t.web_search) if hosted and t.web_search is not None else None
        self._held: Out | None = None  # events after a search result whose titles are not known yet
        self._release = False
        self._tail = ""  # the last characters of the current text part (cited text, with web search only)
        self._tail_end = 0  # characters of the current text part so far
        self.done = False
        self.close_upstream = False  # a stop sequence ended the message: stop reading the upstream now
        self.error: GatewayError | None = None
        self.stop_reason: a.StopReason | None = None
        self.usage: a.Usage | None = None

    # ---- public -------------------------------------------------------------------------------

    def feed(self, event: rs.StreamEvent) -> Out:
        """The Anthropic events for one upstream event (none once the stream is over)."""
        if self.done:
            return []
        out: Out = []
        holding = self._held is not None
        try:
            _HANDLERS[type(event)](self, event, out)
        except GatewayError as exc:
            self._error(exc, out)
        if holding and self._held is not None:
            self._held += out
            out = []
        if self._held is not None and (self._release or self.done or len(self._held) > HOLD_EVENTS):
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
    def started(self) -> bool:
        return self._started

    @property
    def has_output(self) -> bool:
        """Whether any content (text, thinking, tool arguments) has been emitted: the first-token moment."""
        return self._chars > 0

    # ---- message and block framing ----------------------------------------------------------------

    def _start(self, out: Out, response: r.Response | None = None) -> None:
        if self._started:
            return
        self._started = True
        if response is not None:
            self._service_tier = response.service_tier
        usage = empty_usage(input_tokens=self.input_tokens)
        usage["service_tier"] = "priority" if self._service_tier == "priority" else "standard"
        message: a.Message = {"id": message_id(response.id if response is not None else ""), "type": "message",
                              "role": "assistant", "model": self.model, "content": [], "stop_reason": None,
                              "stop_sequence": None, "usage": usage}  # fmt: skip
        out.append(o.MessageStart(message))

    def _open_block(self, kind: int, item_id: str, out: Out, shell: o.BlockShell | None = None) -> bool:
        """Make `item_id` the current item (closing another one); tool blocks start at once, others lazily."""
        self._close(out)
        if self.done:  # text flushed by the close hit a stop sequence
            return False
        self._start(out)
        if self._index:
            self._prefill = ""  # the prefill repeats only at the very start of the message, as non-streaming
        self._open, self._open_item, self._sent, self._block_started = kind, item_id, False, False
        if shell is not None:
            out.append(o.ContentBlockStart(self._index, shell))
            self._block_started = True
        return True

    def _begin(self, out: Out, shell: o.BlockShell) -> None:
        if not self._block_started:
            out.append(o.ContentBlockStart(self._index, shell))
            self._block_started = True

    def _close(self, out: Out) -> None:
        if self._open == TEXT:
            self._flush_text(out)
        if self._block_started:
            out.append(o.ContentBlockStop(self._index))
            self._index += 1
        self._open, self._open_item, self._block_started = NONE, "", False

    def _is_open(self, kind: int, item_id: str) -> bool:
        return self._open == kind and (item_id == self._open_item or not item_id)

    # ---- text ---------------------------------------------------------------------------------

    def _emit_text(self, text: str, out: Out) -> None:
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
        self._open = NONE  # nothing may follow the cut text, not even held-back characters
        if self._block_started:
            out.append(o.ContentBlockStop(self._index))
            self._index += 1
        self._block_started = False
        usage = empty_usage(input_tokens=self.input_tokens, output_tokens=max(1, self._chars // CHARS_PER_TOKEN))
        reason = stop_reason(None, None, refusal=self._refusal is not None, stop_sequence=True,
                             tool_use=self._saw_tool)  # fmt: skip
        self._end(reason, sequence, usage, out)
        self.close_upstream = True

    # ---- terminal -----------------------------------------------------------------------------

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

    # ---- upstream event handlers ------------------------------------------------------------

    def _on_created(self, ev: rs.ResponseCreated, out: Out) -> None:
        self._start(out, ev.response)

    def _on_item_added(self, ev: rs.OutputItemAdded, out: Out) -> None:
        item = r.decode_output_item(ev.item)
        if isinstance(item, r.FunctionCallOutput):
            self._saw_tool = True
            name = self._t.tool_names.get(item.name, item.name)
            self._open_block(TOOL, item.id, out, o.ToolUseShell(item.call_id, name))
        elif isinstance(item, r.ReasoningOutput):
            if self._t.thinking_requested:
                self._open_block(THINKING, item.id, out)
                self._summary_parts = 0
        elif isinstance(item, r.MessageOutput):
            self._close(out)
            self._start(out)

    def _on_item_done(self, ev: rs.OutputItemDone, out: Out) -> None:
        item = r.decode_output_item(ev.item)
        if isinstance(item, r.FunctionCallOutput) and self._is_open(TOOL, item.id):
            arguments = parse_arguments(item.arguments)  # invalid JSON is an upstream fault → error event
            if not self._sent and arguments:
                out.append(o.ContentBlockDelta(self._index, o.InputJsonDelta(item.arguments)))
            self._close(out)
        elif isinstance(item, r.ReasoningOutput) and self._is_open(THINKING, item.id):
            self._end_thinking(item, out)
        elif isinstance(item, r.MessageOutput):
            if self._open == TEXT:
                self._close(out)
            if self._searches is not None and self._searches.pending:
                self._searches.resolve([n for p in item.content if isinstance(p, r.OutputText) for n in p.annotations])
                self._release = True
        elif isinstance(item, r.WebSearchCallOutput) and self._searches is not None:
            self._on_search(item, out)

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

    def _end_thinking(self, item: r.ReasoningOutput, out: Out) -> None:
        if not self._sent and item.encrypted_content and (summary := "\n\n".join(s.text for s in item.summary)):
            self._emit_thinking(summary, out)  # the upstream sent the summary only in the done item
        if item.encrypted_content:
            # The signature carries the reasoning across turns, so the block exists even with an empty summary.
            self._begin(out, o.ThinkingShell())
            signature = encode_signature(item.id, item.encrypted_content)
            out.append(o.ContentBlockDelta(self._index, o.SignatureDelta(signature)))
        self._close(out)

    def _on_part_added(self, ev: rs.ContentPartAdded, out: Out) -> None:
        kind = ev.part.type
        if kind not in ("output_text", "refusal"):
            return
        if not self._open_block(TEXT, ev.item_id, out):
            return
        self._part_index = ev.content_index
        self._tail, self._tail_end = "", 0
        if kind == "refusal":
            self._refusal = self._refusal or ""
            self._begin(out, o.TextShell())  # a refusal is a block even when empty, as non-streaming

    def _on_part_done(self, ev: rs.ContentPartDone, out: Out) -> None:
        if self._is_open(TEXT, ev.item_id) and ev.content_index == self._part_index:
            self._close(out)

    def _on_text_delta(self, ev: rs.TextDelta, out: Out) -> None:
        if self._searches is not None:
            self._tail = (self._tail + ev.delta)[-TAIL_CHARS:]
            self._tail_end += len(ev.delta)
        if ev.delta and self._is_open(TEXT, ev.item_id):
            self._filtered(ev.delta, out)

    def _on_annotation(self, ev: rs.AnnotationAdded, out: Out) -> None:
        """A citation of text already sent: it goes on the open text block (the block of its text part)."""
        ann = ev.annotation
        searches = self._searches
        if searches is None or ann.type != "url_citation" or not self._is_open(TEXT, ev.item_id):
            return
        if not ann.url or not searches.options.permits(ann.url):
            return
        self._begin(out, o.TextShell())
        cited = citation(ann.url, ann.title, self._cited_text(ev.item_id, ann))
        out.append(o.ContentBlockDelta(self._index, o.CitationsDelta(cited)))

    def _cited_text(self, item_id: str, ann: r.Annotation) -> str:
        offset = self._tail_end - len(self._tail)
        return self._tail[max(ann.start_index - offset, 0) : max(ann.end_index - offset, 0)]

    def _on_refusal_delta(self, ev: rs.RefusalDelta, out: Out) -> None:
        if ev.delta and self._is_open(TEXT, ev.item_id):
            self._emit_text(ev.delta, out)

    def _on_refusal_done(self, ev: rs.RefusalDone, out: Out) -> None:
        self._refusal = ev.refusal

    def _on_args_delta(self, ev: rs.ArgumentsDelta, out: Out) -> None:
        if ev.delta and self._is_open(TOOL, ev.item_id):
            self._sent = True
            self._chars += len(ev.delta)
            out.append(o.ContentBlockDelta(self._index, o.InputJsonDelta(ev.delta)))

    def _on_args_done(self, ev: rs.ArgumentsDone, out: Out) -> None:
        if not self._sent and ev.arguments and self._is_open(TOOL, ev.item_id):
            self._sent = True  # only `.done` carried the arguments: deliver them in one delta
            out.append(o.ContentBlockDelta(self._index, o.InputJsonDelta(ev.arguments)))

    def _on_summary_part(self, ev: rs.SummaryPartAdded, out: Out) -> None:
        if self._is_open(THINKING, ev.item_id):
            if self._summary_parts:
                self._emit_thinking("\n\n", out)  # the non-streaming path joins summary parts the same way
            self._summary_parts += 1

    def _on_summary_delta(self, ev: rs.SummaryTextDelta, out: Out) -> None:
        if ev.delta and self._is_open(THINKING, ev.item_id):
            self._emit_thinking(ev.delta, out)

    def _emit_thinking(self, text: str, out: Out) -> None:
        self._begin(out, o.ThinkingShell())
        self._sent = True
        self._chars += len(text)
        out.append(o.ContentBlockDelta(self._index, o.ThinkingDelta(text)))

    def _on_completed(self, ev: rs.ResponseCompleted, out: Out) -> None:
        response = ev.response
        if (failure := self._failure(response)) is not None:
            raise failure
        self._start(out, response)
        self._close(out)
        if self.done:  # a stop sequence matched in the text flushed by the close
            return
        incomplete = response.incomplete_details.reason if response.incomplete_details else None
        reason = stop_reason(response.status, incomplete, refusal=self._refusal is not None, stop_sequence=False,
                             tool_use=self._saw_tool)  # fmt: skip
        usage = to_anthropic_usage(response.usage, service_tier=response.service_tier)
        if self._searches is not None:
            usage["server_tool_use"] = {"web_search_requests": self._searches.count}
        self._end(reason, None, usage, out)

    def _on_failed(self, ev: rs.ResponseFailed, out: Out) -> None:
        raise self._failure(ev.response) or ApiError("The upstream response failed")

    def _on_error(self, ev: rs.StreamError, out: Out) -> None:
        raise from_stream_error(ev.error_code, ev.error_message, estimated_tokens=self.input_tokens,
                                context_window=self._window)  # fmt: skip

    def _failure(self, response: r.Response) -> GatewayError | None:
        return failure_of(response, estimated_tokens=self.input_tokens, context_window=self._window)


_Handler = Callable[[StreamTranslator, rs.StreamEvent, Out], None]
_HANDLERS: dict[type, _Handler] = {
    rs.ResponseCreated: StreamTranslator._on_created,  # type: ignore[dict-item]
    rs.OutputItemAdded: StreamTranslator._on_item_added,  # type: ignore[dict-item]
    rs.OutputItemDone: StreamTranslator._on_item_done,  # type: ignore[dict-item]
    rs.ContentPartAdded: StreamTranslator._on_part_added,  # type: ignore[dict-item]
    rs.ContentPartDone: StreamTranslator._on_part_done,  # type: ignore[dict-item]
    rs.TextDelta: StreamTranslator._on_text_delta,  # type: ignore[dict-item]
    rs.RefusalDelta: StreamTranslator._on_refusal_delta,  # type: ignore[dict-item]
    rs.RefusalDone: StreamTranslator._on_refusal_done,  # type: ignore[dict-item]
    rs.ArgumentsDelta: StreamTranslator._on_args_delta,  # type: ignore[dict-item]
    rs.ArgumentsDone: StreamTranslator._on_args_done,  # type: ignore[dict-item]
    rs.SummaryPartAdded: StreamTranslator._on_summary_part,  # type: ignore[dict-item]
    rs.SummaryTextDelta: StreamTranslator._on_summary_delta,  # type: ignore[dict-item]
    rs.ResponseCompleted: StreamTranslator._on_completed,  # type: ignore[dict-item]
    rs.ResponseFailed: StreamTranslator._on_failed,  # type: ignore[dict-item]
    rs.StreamError: StreamTranslator._on_error,  # type: ignore[dict-item]
    rs.AnnotationAdded: StreamTranslator._on_annotation,  # type: ignore[dict-item]
}
