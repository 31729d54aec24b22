"""The SearXNG backend on its own: parsing a hostile answer, size bound, status mapping (MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from messages_bridge.websearch.backend import MAX_BODY_BYTES, SearchFailed, SearxngBackend, parse_searxng


def test_parse_keeps_http_results_trimmed_and_bounded() -> None:
    body = json.dumps(
        {
            "results": [
                {"url": "javascript:alert(1)", "title": "x"},
                {
                    "url": "https://a.example/1",
                    "title": "  A\n  title ",
                    "content": "c " * 1000,
                    "publishedDate": "2025-01-01",
                },
                {"title": "no url"},
                {"url": "http://b.example/", "title": None, "content": None},
                {"url": "https://c.example/", "title": "C"},
            ]
        }
    ).encode()
    found = parse_searxng(body, limit=2)
    assert [(f.url, f.title) for f in found] == [("https://a.example/1", "A title"), ("http://b.example/", "")]
    assert len(found[0].excerpt) == 600 and found[0].page_age == "2025-01-01"


@pytest.mark.parametrize("body", [b"not json", b'{"results": 3}', b"[]", b'{"results": [{"url": 1}]}'])
def test_malformed_answers_are_unavailable(body: bytes) -> None:
    with pytest.raises(SearchFailed) as failed:
        parse_searxng(body, limit=5)
    assert failed.value.code == "unavailable"


@pytest.mark.parametrize(("status", "code"), [(429, "too_many_requests"), (500, "unavailable"), (403, "unavailable")])
async def test_status_codes_map_to_error_codes(status: int, code: str) -> None:
    backend = SearxngBackend(
        "http://searx.test", timeout=1.0, transport=httpx.MockTransport(lambda _: httpx.Response(status))
    )
    with pytest.raises(SearchFailed) as failed:
        await backend.search("q", limit=3)
    assert failed.value.code == code
    await backend.aclose()


async def test_oversized_answers_are_refused_and_the_query_goes_as_a_parameter() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=b"x" * (MAX_BODY_BYTES + 1))

    backend = SearxngBackend("http://searx.test/", timeout=1.0, transport=httpx.MockTransport(handler))
    with pytest.raises(SearchFailed, match="too large"):
        await backend.search("a&b=c", limit=3)
    assert seen[0].path == "/search" and seen[0].params["q"] == "a&b=c" and seen[0].params["format"] == "json"
    await backend.aclose()
