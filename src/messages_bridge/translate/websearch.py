"""Anthropic's `web_search` server tool ⇄ the Responses API's hosted search, and the blocks both modes emit (pure).

The gateway answers a web search with the blocks Anthropic's API sends: a `server_tool_use` (`srvtoolu_…` id,
input `{"query": …}`), a `web_search_tool_result` whose whole content is known when it starts, then text blocks
whose `citations` are `web_search_result_location`s. `encrypted_content` / `encrypted_index` are opaque to clients:
this gateway mints its own (`mbws1.` / `mbci1.` + base64url JSON), so blocks sent back on a later turn can be
turned into faithful upstream input.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from messages_bridge.errors import InvalidRequestError
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r

WebSearchMode = Literal["hosted", "gateway", "off"]
TOOL_NAME = "web_search"
SERVER_ID_PREFIX = "srvtoolu_"
CONTENT_PREFIX = "mbws1."
INDEX_PREFIX = "mbci1."
ErrorCode = Literal["unavailable", "max_uses_exceeded", "too_many_requests", "invalid_tool_input", "query_too_long"]
MAX_QUERY_CHARS = 500  # Anthropic's error `query_too_long` exists; a backend query beyond this is refused
MAX_CITED_CHARS = 150  # Anthropic's `cited_text` is at most 150 characters
_UNSAFE_ID = re.compile(r"[^a-zA-Z0-9_]")
_TRACKING = re.compile(r"[?&]utm_source=openai$")

# The function the gateway offers a model without hosted search (gateway mode).
FUNCTION_TOOL: r.FunctionTool = {
    "type": "function",
    "name": TOOL_NAME,
    "description": "Search the web. Returns the titles, URLs and excerpts of the top results for the query.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "The search query"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "strict": True,
}


def is_web_search(tool: a.Tool) -> bool:
    """Anthropic's server tool, any version (`web_search_20250305`, `web_search_20260209`, …)."""
    return tool.type is not None and tool.type.startswith("web_search_")


@dataclass(frozen=True, slots=True)
class WebSearchOptions:
    """The client's web search tool: what the gateway forwards, enforces, or tells the model."""

    max_uses: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    user_location: msgspec.Raw | None = None

    @classmethod
    def from_tool(cls, tool: a.Tool) -> WebSearchOptions:
        location = tool.user_location if isinstance(tool.user_location, msgspec.Raw) else None
        return cls(
            max_uses=tool.max_uses,
            allowed_domains=tuple(_domain(d) for d in tool.allowed_domains or ()),
            blocked_domains=tuple(_domain(d) for d in tool.blocked_domains or ()),
            user_location=location,
        )

    def permits(self, url: str) -> bool:
        """Whether a result URL may reach the client (blocked domains always win; then the allow-list)."""
        host = _host(url)
        if any(_matches(host, d) for d in self.blocked_domains):
            return False
        return not self.allowed_domains or any(_matches(host, d) for d in self.allowed_domains)


def _domain(value: str) -> str:
    """`https://Example.com/path` or `example.com` → `example.com` (domains match hosts and their subdomains)."""
    text = value.strip().lower()
    host = urlsplit(text if "//" in text else "//" + text).hostname or text
    return host.removeprefix("www.")


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def hosted_tool(options: WebSearchOptions) -> r.WebSearchTool:
    """The Responses hosted tool for the client's options (blocked domains and max_uses are enforced here)."""
    tool: r.WebSearchTool = {"type": "web_search"}
    if options.allowed_domains:
        tool["filters"] = {"allowed_domains": list(options.allowed_domains)}
    if options.user_location is not None:
        location = msgspec.json.decode(options.user_location)
        if isinstance(location, dict):
            tool["user_location"] = {k: v for k, v in location.items() if v is not None}
    return tool


def policy_note(options: WebSearchOptions) -> str | None:
    """A developer note carrying the limits the hosted tool cannot express (they are also enforced on results)."""
    notes = []
    if options.blocked_domains:
        notes.append("Never use or cite results from these domains: " + ", ".join(options.blocked_domains) + ".")
    if options.max_uses is not None:
        notes.append(f"Search the web at most {options.max_uses} times.")
    return " ".join(notes) or None


# ---- opaque tokens ------------------------------------------------------------------------------


class ResultRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a minted `encrypted_content` / `encrypted_index` carries."""

    u: str
    t: str = ""
    s: str = ""  # the excerpt the model saw (gateway mode)


_ENCODER = msgspec.json.Encoder()
_REF_DECODER = msgspec.json.Decoder(ResultRef)


def _mint(prefix: str, ref: ResultRef) -> str:
    return prefix + base64.urlsafe_b64encode(_ENCODER.encode(ref)).decode("ascii")


def read_token(token: str) -> ResultRef | None:
    """The reference a token minted by this gateway carries; None for anything else (e.g. Anthropic's own)."""
    for prefix in (CONTENT_PREFIX, INDEX_PREFIX):
        if token.startswith(prefix):
            try:
                return _REF_DECODER.decode(base64.urlsafe_b64decode(token[len(prefix) :]))
            except (binascii.Error, ValueError, msgspec.DecodeError):
                return None
    return None


def server_id(upstream_id: str) -> str:
    """`srvtoolu_` + the upstream item id (`ws_…`, `call_…`), so a block sent back names its upstream item."""
    return SERVER_ID_PREFIX + _UNSAFE_ID.sub("_", upstream_id)


def hosted_item_id(block_id: str) -> str | None:
    """The `ws_…` id a `server_tool_use` id minted in hosted mode carries."""
    rest = block_id.removeprefix(SERVER_ID_PREFIX)
    return rest if rest != block_id and rest.startswith("ws_") else None


# ---- blocks -----------------------------------------------------------------------------------


def fallback_title(url: str) -> str:
    """A readable title for a URL nobody titled (never empty: clients list results by title)."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path.rstrip("/")) or url


def result(url: str, title: str, *, excerpt: str = "", page_age: str | None = None) -> a.WebSearchResult:
    title = title.strip() or fallback_title(url)
    ref = ResultRef(u=url, t=title, s=excerpt)
    return {
        "type": "web_search_result",
        "url": url,
        "title": title,
        "encrypted_content": _mint(CONTENT_PREFIX, ref),
        "page_age": page_age,
    }


def error(code: ErrorCode) -> a.WebSearchError:
    return {"type": "web_search_tool_result_error", "error_code": code}


def citation(url: str, title: str, cited_text: str) -> a.WebSearchCitation:
    title = title.strip() or fallback_title(url)
    cited = cited_text[:MAX_CITED_CHARS]
    return {
        "type": "web_search_result_location",
        "url": url,
        "title": title,
        "cited_text": cited,
        "encrypted_index": _mint(INDEX_PREFIX, ResultRef(u=url, t=title)),
    }


def server_tool_use(block_id: str, query: str | None) -> a.ServerToolUseOut:
    return {
        "type": "server_tool_use",
        "id": block_id,
        "name": "web_search",
        "input": {"query": query} if query is not None else {},
    }


def url_key(url: str) -> str:
    """Citations carry `?utm_source=openai`, sources do not: one key for both."""
    return _TRACKING.sub("", url)


def citations_for(
    text: str, annotations: Sequence[r.Annotation], options: WebSearchOptions
) -> list[a.WebSearchCitation]:
    """The web citations of one text part, in order (blocked domains left out). The text block stays whole: the
    stream learns of a citation only after its text went out, so both paths attach citations to the part's block."""
    out: list[a.WebSearchCitation] = []
    for ann in annotations:
        if ann.type == "url_citation" and ann.url and options.permits(ann.url):
            out.append(citation(ann.url, ann.title, text[max(ann.start_index, 0) : max(ann.end_index, 0)]))
    return out


# ---- hosted searches: web_search_call items → blocks ------------------------------------------


@dataclass(slots=True)
class _Pending:
    urls: list[str]
    content: list[a.WebSearchResult]  # filled in place when the answer's citations are known


@dataclass(slots=True)
class HostedSearches:
    """Turns `web_search_call` items into block pairs; shared by the streaming and non-streaming translators.

    A result block is emitted complete, but the titles of its URLs only arrive later, in the citations of the
    answer. So each result's content list is filled in place when the next message item completes (`resolve`):
    titles come from the citations for a URL (else a readable form of the URL), and a search whose sources the
    upstream did not include gets the URLs the answer cites. The streaming translator holds events in between.
    """

    options: WebSearchOptions
    count: int = 0  # searches reported to the client (`usage.server_tool_use.web_search_requests`)
    calls: int = 0
    titles: dict[str, str] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)

    def on_call(self, item: r.WebSearchCallOutput) -> tuple[a.ServerToolUseOut, a.WebSearchToolResultOut] | None:
        """The blocks for one finished call; None for page visits (`open_page`, `find`), which are not searches
        (an opened page joins the results of the search it came from)."""
        action = item.action
        if action is not None and action.type != "search":
            if action.type == "open_page" and action.url and self.pending:
                self.pending[-1].urls.append(action.url)  # a page the model opened from the last search's results
            return None
        self.calls += 1
        block_id = server_id(item.id)
        query = action.query if action is not None else None
        use = server_tool_use(block_id, query)
        over = self.options.max_uses is not None and self.calls > self.options.max_uses
        if over or item.status == "failed":
            code: ErrorCode = "max_uses_exceeded" if over else "unavailable"
            return use, {"type": "web_search_tool_result", "tool_use_id": block_id, "content": error(code)}
        self.count += 1
        urls = [s.url for s in (action.sources if action is not None else None) or () if s.url]
        content: list[a.WebSearchResult] = []
        self.pending.append(_Pending(urls, content))
        return use, {"type": "web_search_tool_result", "tool_use_id": block_id, "content": content}

    def resolve(self, annotations: Sequence[r.Annotation] = ()) -> None:
        """Fill the pending result lists, using the citations of the answer that followed them."""
        cited: list[str] = []
        for ann in annotations:
            if ann.type == "url_citation" and ann.url:
                self.titles.setdefault(url_key(ann.url), ann.title)
                if url_key(ann.url) not in cited:
                    cited.append(url_key(ann.url))
        sourceless = [p for p in self.pending if not p.urls]
        if sourceless:
            sourceless[-1].urls = cited  # the search the answer came from
        for pending in self.pending:
            seen: set[str] = set()
            for url in pending.urls:
                key = url_key(url)
                if key in seen or not self.options.permits(url):
                    continue
                seen.add(key)
                pending.content.append(result(url, self.titles.get(key, "")))
        self.pending = []


# ---- history: blocks sent back on a later turn → upstream input ------------------------------


class _ResultIn(msgspec.Struct, kw_only=True):
    type: str = ""
    url: str = ""
    title: str = ""
    encrypted_content: str = ""
    error_code: str = ""


class _QueryIn(msgspec.Struct, kw_only=True):
    query: str | None = None


_RESULTS_IN = msgspec.json.Decoder(list[_ResultIn] | _ResultIn)
_QUERY_IN = msgspec.json.Decoder(_QueryIn)


def history_items(use: a.ServerToolUseBlock, block: a.WebSearchToolResultBlock, *, hosted: bool) -> list[r.InputItem]:
    """One search from an earlier turn: the hosted call it was (when this gateway minted it for a hosted
    upstream), else the search spelled out as assistant text, which every upstream accepts."""
    try:
        query = _QUERY_IN.decode(use.input).query or ""
        content = _RESULTS_IN.decode(block.content)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError("web_search_tool_result.content: invalid content") from exc
    ws_id = hosted_item_id(use.id)
    if isinstance(content, _ResultIn):
        text = f'Web search for "{query}" failed: {content.error_code or "unavailable"}.'
        return [{"type": "message", "role": "assistant", "content": text}]
    if hosted and ws_id is not None:
        sources: list[r.UrlSourceParam] = [{"type": "url", "url": c.url} for c in content if c.url]
        call: r.WebSearchCallItem = {
            "type": "web_search_call",
            "id": ws_id,
            "status": "completed",
            "action": {"type": "search", "query": query, "sources": sources},
        }
        return [call]
    lines = [f'Searched the web for "{query}".']
    for n, item in enumerate(content, start=1):
        ref = read_token(item.encrypted_content)
        lines.append(f"{n}. {item.title or item.url} — {item.url}")
        if ref is not None and ref.s:
            lines.append(f"   {ref.s}")
    if not content:
        lines.append("No results.")
    return [{"type": "message", "role": "assistant", "content": "\n".join(lines)}]
