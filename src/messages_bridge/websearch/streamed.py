"""The gateway-run search loop, streaming: every upstream round is streamed and translated as it arrives.

Each round goes through the ordinary `StreamTranslator`; its events are re-framed into one Anthropic message: one
`message_start` (the first round's), block indexes shifted to continue across rounds, the model's `web_search`
function calls shown as `server_tool_use` blocks, each followed — as soon as the call's arguments are complete —
by the search's `web_search_tool_result` block, and one `message_delta` with the usage of every round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec

from messages_bridge.errors import ApiError
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol import responses as r
from messages_bridge.protocol import responses_stream as rs
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.stream import StreamTranslator
from messages_bridge.translate.usage import empty_usage
from messages_bridge.translate.websearch import FUNCTION_TOOL, server_id
from messages_bridge.upstream.client import stream_events
from messages_bridge.websearch.loop import GatewaySearch, as_input

SendEvents = Callable[[list[o.StreamEvent]], Awaitable[None]]  # where the Anthropic events go, in order
_ENCODER = msgspec.json.Encoder()
_QUERY = msgspec.json.Decoder(dict[str, object])


@dataclass(slots=True)
class _Round:
    """One upstream round's re-framing state."""

    shift: int  # added to the translator's block indexes
    calls: dict[int, tuple[str, list[str]]] = field(default_factory=dict)  # index → (call id, argument parts)
    client_calls: bool = False
    outputs: list[r.InputItem] = field(default_factory=list)


@dataclass(slots=True)
class StreamedSearch:
    """Runs `GatewaySearch`'s loop with streamed rounds; `send` gets the Anthropic events in order."""

    search: GatewaySearch
    send: SendEvents
    input_tokens: int
    _started: bool = False
    _next_index: int = 0  # the index the next block gets, across rounds
    _usage: list[a.Usage] = field(default_factory=list)
    _ending: o.MessageDeltaBody | None = None  # the last round's (stop reason, stop sequence, details)
    usage: a.Usage | None = None  # the message's, once it ended
    stop_reason: a.StopReason | None = None

    async def run(self, body: r.ResponsesRequest, t: ReplyContext, *, model: str) -> None:
        search = self.search
        search.start_clock()
        body = {**body, "input": list(body["input"]), "stream": True, "stream_options": {"include_obfuscation": False}}
        while True:
            search.stats.rounds += 1
            translator = StreamTranslator(t, model=model, input_tokens=self.input_tokens)
            step = _Round(shift=self._next_index)  # the translator numbers each round's blocks from 0
            completed = await self._round(body, translator, step)
            if translator.error is not None:
                return  # the error event went out
            self._usage.append(translator.usage or empty_usage())
            # No completed response without an error: a stop sequence ended the answer.
            stop = translator.stop_reason
            if completed is None or search.finished(step.outputs, client_calls=step.client_calls, stop_reason=stop):
                await self.send(self._end(translator))
                return
            body["input"] = [*body["input"], *as_input(completed), *step.outputs]
            search.next_round(body)

    async def _round(self, body: r.ResponsesRequest, translator: StreamTranslator, step: _Round) -> r.Response | None:
        completed: r.Response | None = None
        search = self.search
        async with search.client.stream(
            _ENCODER.encode(body), request_id=search.request_id, facts=search.facts
        ) as upstream:
            async for events in stream_events(upstream):
                for event in events:
                    if isinstance(event, rs.ResponseCompleted):
                        completed = event.response
                    await self._forward(translator.feed(event), step)
                    if translator.done:
                        return completed
        await self._forward(translator.finish(), step)
        return None

    async def _forward(self, events: list[o.StreamEvent], step: _Round) -> None:
        out: list[o.StreamEvent] = []
        for event in events:
            out += await self._reframe(event, step)
        if out:
            await self.send(out)

    async def _reframe(self, event: o.StreamEvent, step: _Round) -> list[o.StreamEvent]:
        if isinstance(event, o.MessageStart):
            if self._started:
                return []
            self._started = True
            return [event]
        if isinstance(event, o.MessageDelta):
            self._ending = event.delta
            return []  # one ending, after the last round
        if isinstance(event, o.MessageStop):
            return []
        if isinstance(event, o.ErrorEvent):
            return [event]
        index = event.index
        event.index = index + step.shift
        if isinstance(event, o.ContentBlockStart):
            self._next_index = max(self._next_index, event.index + 1)
            shell = event.content_block
            if isinstance(shell, o.ToolUseShell) and shell.name == FUNCTION_TOOL["name"]:
                step.calls[index] = (shell.id, [])
                event.content_block = o.ServerToolUseShell(server_id(shell.id), shell.name)
            elif isinstance(shell, o.ToolUseShell):
                step.client_calls = True
        elif isinstance(event, o.ContentBlockDelta) and index in step.calls:
            if isinstance(event.delta, o.InputJsonDelta):
                step.calls[index][1].append(event.delta.partial_json)
        elif isinstance(event, o.ContentBlockStop) and index in step.calls:
            return [event, *await self._result(step, index)]
        return [event]

    async def _result(self, step: _Round, index: int) -> list[o.StreamEvent]:
        """The search a finished `web_search` call asks for, run now; its result block follows the call's block."""
        call_id, parts = step.calls.pop(index)
        try:
            arguments = _QUERY.decode("".join(parts) or "{}")
        except msgspec.DecodeError as exc:
            raise ApiError("The upstream model produced tool arguments that are not valid JSON") from exc
        query = arguments.get("query")
        found, text = await self.search.search(query if isinstance(query, str) else "")
        step.shift += 1
        step.outputs.append({"type": "function_call_output", "call_id": call_id, "output": text})
        at = index + step.shift
        self._next_index = max(self._next_index, at + 1)
        shell = o.WebSearchResultShell(server_id(call_id), found)
        return [o.ContentBlockStart(at, shell), o.ContentBlockStop(at)]

    def _end(self, last: StreamTranslator) -> list[o.StreamEvent]:
        self.usage = _sum(self._usage, self.search.stats.searches)
        self.stop_reason = "pause_turn" if self.search.paused else last.stop_reason or "end_turn"
        body = self._ending if self._ending is not None and not self.search.paused else None
        body = body or o.MessageDeltaBody(self.stop_reason, None)
        return [o.MessageDelta(body, self.usage), o.MessageStop()]


def _sum(usages: list[a.Usage], searches: int) -> a.Usage:
    total = empty_usage()
    for usage in usages:
        for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            total[key] += usage[key]
    total["service_tier"] = usages[-1].get("service_tier", "standard") if usages else "standard"
    total["server_tool_use"] = {"web_search_requests": searches}
    return total
