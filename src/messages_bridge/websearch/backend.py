"""Search backends the gateway runs itself: a small Protocol, and SearXNG's JSON API behind it.

A backend answers a query with results, or raises `SearchFailed` with the Anthropic error code the client gets
in-band (`unavailable`, `too_many_requests`, …). Its answer is hostile input: size-bounded, parsed defensively,
and only http(s) results with a URL survive. The gateway only ever calls the configured backend URL; no URL from a
request is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
import msgspec

from messages_bridge.translate.websearch import ErrorCode

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_TITLE_CHARS = 300
MAX_EXCERPT_CHARS = 600


@dataclass(frozen=True, slots=True)
class SearchResult:
    url: str
    title: str
    excerpt: str = ""
    page_age: str | None = None


class SearchFailed(Exception):
    """A search that did not answer; `code` is what the client sees in its `web_search_tool_result_error`."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code: ErrorCode = code
        self.reason = reason


class SearchBackend(Protocol):
    """What the gateway's search loop needs from a backend (SearXNG now; Brave, Tavily, … can follow)."""

    name: str

    async def search(self, query: str, *, limit: int) -> list[SearchResult]: ...

    async def aclose(self) -> None: ...


class _SearxResult(msgspec.Struct, kw_only=True):
    url: str | None = None
    title: str | None = None
    content: str | None = None
    publishedDate: str | None = None


class _SearxAnswer(msgspec.Struct, kw_only=True):
    results: list[_SearxResult] = msgspec.field(default_factory=list)


_SEARX_DECODER = msgspec.json.Decoder(_SearxAnswer)


def _status_failure(status: int) -> SearchFailed:
    if status == 429:
        return SearchFailed("too_many_requests", "the search backend is rate limiting")
    return SearchFailed("unavailable", f"the search backend answered HTTP {status}")


def parse_searxng(body: bytes, *, limit: int) -> list[SearchResult]:
    """SearXNG's `format=json` answer → results; anything malformed is `unavailable`."""
    try:
        answer = _SEARX_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise SearchFailed("unavailable", "the search backend sent a malformed answer") from exc
    out: list[SearchResult] = []
    for item in answer.results:
        url = (item.url or "").strip()
        if not url.startswith(("https://", "http://")):
            continue
        title = " ".join((item.title or "").split())[:MAX_TITLE_CHARS]
        excerpt = " ".join((item.content or "").split())[:MAX_EXCERPT_CHARS]
        out.append(SearchResult(url, title, excerpt, item.publishedDate or None))
        if len(out) >= limit:
            break
    return out


class SearxngBackend:
    """`GET {url}/search?q=…&format=json` (SearXNG needs `json` among its `search.formats`)."""

    name = "searxng"

    def __init__(self, url: str, *, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._endpoint = url.rstrip("/") + "/search"
        self._client = httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        )

    async def search(self, query: str, *, limit: int) -> list[SearchResult]:
        params = {"q": query, "format": "json"}
        try:
            async with self._client.stream("GET", self._endpoint, params=params) as response:
                if response.status_code != 200:
                    raise _status_failure(response.status_code)
                body = await _read_bounded(response)
        except httpx.TimeoutException as exc:
            raise SearchFailed("unavailable", "the search backend timed out") from exc
        except httpx.HTTPError as exc:
            raise SearchFailed("unavailable", "the search backend is unreachable") from exc
        return parse_searxng(body, limit=limit)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise SearchFailed("unavailable", "the search backend's answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)
