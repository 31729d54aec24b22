"""The gateway-run search loop: for upstreams without hosted search, the gateway searches on the model's behalf.

The upstream model is offered a `web_search` function. Each round, the gateway calls the upstream (here
non-streaming; `streamed.py` streams the rounds), turns the model's `web_search` calls into `server_tool_use`
blocks, runs them against the backend, answers with `web_search_tool_result` blocks and feeds the results back as
function outputs, until the model answers without searching. Bounded by the client's `max_uses`, a time budget
and a round cap; every search failure is reported in-band (an error block, and a function output that tells the
model why), never as an HTTP error.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.usage import TokenUsage
from messages_bridge.translate.websearch import (
    FUNCTION_TOOL,
    MAX_QUERY_CHARS,
    ErrorCode,
    WebSearchOptions,
    error,
    result,
    server_id,
    server_tool_use,
)
from messages_bridge.upstream.client import ResponsesClient
from messages_bridge.websearch.backend import SearchBackend, SearchFailed, SearchResult

DEFAULT_MAX_USES = 8  # when the client set no max_uses (Claude Code sends 8)
MAX_EXTRA_ROUNDS = 2  # rounds beyond max_uses: the answer after the last search, one for a refused extra search
_ENCODER = msgspec.json.Encoder()
_REASONS: dict[ErrorCode, str] = {
    "max_uses_exceeded": "the search limit for this request is reached",
    "invalid_tool_input": "the query is empty",
    "query_too_long": f"the query is longer than {MAX_QUERY_CHARS} characters",
}


@dataclass(slots=True)
class SearchStats:
    """What the access record and the metrics get: counts and timings, never the query."""

    searches: int = 0
    errors: int = 0
    backend_seconds: float = 0.0
    rounds: int = 0


@dataclass(slots=True)
class GatewaySearch:
    """One request's loop and its limits; `run` returns the whole message (`StreamedSearch` streams it)."""

    client: ResponsesClient
    backend: SearchBackend | None
    options: WebSearchOptions
    time_budget: float
    results: int = 8
    request_id: str | None = None
    facts: UpstreamFacts | None = None  # where the upstream calls' retries are counted
    stats: SearchStats = field(default_factory=SearchStats)
    message_id: str = ""
    paused: bool = False  # ended by the round cap with searches unanswered: Anthropic's `pause_turn`
    _deadline: float = 0.0

    @property
    def max_uses(self) -> int:
        return self.options.max_uses if self.options.max_uses is not None else DEFAULT_MAX_USES

    def start_clock(self) -> None:
        self._deadline = time.monotonic() + self.time_budget

    async def run(self, body: r.ResponsesRequest, t: ReplyContext, *, model: str) -> a.Message:
        """The non-streaming loop: the whole message."""
        self.start_clock()
        body = {**body, "input": list(body["input"])}
        body.pop("stream", None)
        body.pop("stream_options", None)
        content: list[a.ContentOut] = []
        usage = TokenUsage()
        while True:
            self.stats.rounds += 1
            reply = await self.client.create(_ENCODER.encode(body), request_id=self.request_id, facts=self.facts)
            message = to_anthropic_message(reply.response, t, model=model)
            self.message_id = self.message_id or message["id"]
            usage.add(message["usage"])
            outputs = await self._round(message["content"], content)
            client_calls = any(b["type"] == "tool_use" for b in message["content"] if not _is_search(b))
            if self.finished(outputs, client_calls=client_calls, stop_reason=message["stop_reason"]):
                return self._final(message, content, usage)
            body["input"] = [*body["input"], *as_input(reply.response), *outputs]
            self.next_round(body)

    async def _round(self, blocks: list[a.ContentOut], content: list[a.ContentOut]) -> list[r.InputItem]:
        """One round's blocks into `content`, each search run and answered in place; the function outputs."""
        outputs: list[r.InputItem] = []
        for block in blocks:
            if block["type"] != "tool_use" or not _is_search(block):
                content.append(block)
                continue
            query = block["input"].get("query") if isinstance(block["input"], dict) else None
            block_id = server_id(block["id"])
            content.append(server_tool_use(block_id, query if isinstance(query, str) else None))
            found, text = await self.search(query if isinstance(query, str) else "")
            content.append({"type": "web_search_tool_result", "tool_use_id": block_id, "content": found})
            outputs.append({"type": "function_call_output", "call_id": block["id"], "output": text})
        return outputs

    def finished(self, outputs: list[r.InputItem], *, client_calls: bool, stop_reason: a.StopReason | None) -> bool:
        """Whether the message ends after this round: no search to answer, a client tool to run, a limit hit, or
        the round cap (which also bounds an upstream that keeps calling the function)."""
        if not outputs or client_calls or stop_reason not in ("tool_use", "end_turn"):
            return True
        self.paused = self.stats.rounds >= self.max_uses + MAX_EXTRA_ROUNDS
        return self.paused

    async def search(self, query: str) -> tuple[list[a.WebSearchResult] | a.WebSearchError, str]:
        """One search: its result block content, and the function output the model reads."""
        code: ErrorCode | None = None
        reason = ""
        if self.stats.searches >= self.max_uses:
            code = "max_uses_exceeded"
        elif not query.strip():
            code = "invalid_tool_input"
        elif len(query) > MAX_QUERY_CHARS:
            code = "query_too_long"
        if code is not None:
            reason = _REASONS[code]
        else:
            try:
                found = await self._backend_search(query)
            except SearchFailed as exc:
                code, reason = exc.code, exc.reason
                self.stats.errors += 1
            else:
                return [result(f.url, f.title, excerpt=f.excerpt, page_age=f.page_age) for f in found], _listing(
                    query, found
                )
        return error(code), (
            f'The web search for "{query}" failed ({code}): {reason}. Do not search again for it; tell the user '
            "that the search could not be done and why."
        )

    async def _backend_search(self, query: str) -> list[SearchResult]:
        if self.backend is None:
            raise SearchFailed("unavailable", "no search backend is configured")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise SearchFailed("unavailable", "the time budget for searching is used up")
        self.stats.searches += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(remaining):
                found = await self.backend.search(_scoped(query, self.options), limit=self.results * 2)
        except TimeoutError as exc:
            raise SearchFailed("unavailable", "the time budget for searching is used up") from exc
        finally:
            self.stats.backend_seconds += time.perf_counter() - started
        return [f for f in found if self.options.permits(f.url)][: self.results]

    def next_round(self, body: r.ResponsesRequest) -> None:
        """Searching is optional after the first round; once the limits are reached it is no longer offered."""
        exhausted = self.stats.searches >= self.max_uses or time.monotonic() >= self._deadline
        tools = msgspec.json.decode(bytes(body["tools"])) if "tools" in body else []
        if exhausted:
            tools = [tool for tool in tools if tool.get("name") != FUNCTION_TOOL["name"]]
        if tools:
            body["tools"] = msgspec.Raw(_ENCODER.encode(tools))
            body["tool_choice"] = "auto"
        else:
            for key in ("tools", "tool_choice", "parallel_tool_calls"):
                body.pop(key, None)  # type: ignore[misc]

    def _final(self, last: a.Message, content: list[a.ContentOut], usage: TokenUsage) -> a.Message:
        total: a.Usage = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation,
            "cache_read_input_tokens": usage.cache_read,
            "service_tier": last["usage"].get("service_tier", "standard"),
            "server_tool_use": {"web_search_requests": self.stats.searches},
        }
        message: a.Message = {**last, "id": self.message_id, "content": content, "usage": total}
        if self.paused:
            message["stop_reason"] = "pause_turn"
        return message


def _is_search(block: a.ContentOut) -> bool:
    return block["type"] == "tool_use" and block["name"] == FUNCTION_TOOL["name"]


def _scoped(query: str, options: WebSearchOptions) -> str:
    """The backend query: allowed domains as `site:` operators (results are filtered by domain as well)."""
    sites = [f"site:{d}" for d in options.allowed_domains]
    if not sites:
        return query
    return f"{query} {sites[0]}" if len(sites) == 1 else f"{query} ({' OR '.join(sites)})"


def _listing(query: str, found: list[SearchResult]) -> str:
    if not found:
        return f'No results found for "{query}".'
    lines = [f'Web search results for "{query}":']
    for n, item in enumerate(found, start=1):
        lines.append(f"\n{n}. {item.title or item.url}\nURL: {item.url}")
        if item.page_age:
            lines.append(f"Published: {item.page_age}")
        if item.excerpt:
            lines.append(item.excerpt)
    return "\n".join(lines)


def as_input(response: r.Response) -> list[r.InputItem]:
    """A round's output as input for the next round (reasoning kept with its encrypted content)."""
    items: list[r.InputItem] = []
    for raw in response.output:
        item = r.decode_output_item(raw)
        if isinstance(item, r.ReasoningOutput) and item.encrypted_content:
            summary: list[r.SummaryTextPart] = [{"type": "summary_text", "text": s.text} for s in item.summary]
            content = item.encrypted_content
            items.append({"type": "reasoning", "id": item.id, "summary": summary, "encrypted_content": content})
        elif isinstance(item, r.MessageOutput):
            text = "".join(p.text for p in item.content if isinstance(p, r.OutputText))
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
        elif isinstance(item, r.FunctionCallOutput):
            call: r.FunctionCallItem = {
                "type": "function_call",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            }
            items.append(call)
    return items
