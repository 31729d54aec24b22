"""A fake SearXNG (`GET /search?q=…&format=json`) for the gateway-run web search, with scriptable failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Behaviour = Literal["ok", "empty", "error500", "ratelimit", "malformed", "slow"]


@dataclass(slots=True)
class SearxScript:
    """What the next searches do (then `ok`), and the queries received."""

    behaviours: list[Behaviour] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    slow_seconds: float = 5.0


def results_for(query: str, count: int = 3) -> list[dict[str, str]]:
    slug = "-".join(query.lower().split())[:40] or "q"
    return [
        {
            "url": f"https://searx.example/{slug}/{n}",
            "title": f"Searx result {n} for {query}",
            "content": f"Excerpt {n} about {query}.",
            "engine": "fake",
        }
        for n in range(1, count + 1)
    ]


def create_searxng_app(script: SearxScript) -> Starlette:
    async def search(request: Request) -> Response:
        query = request.query_params.get("q", "")
        script.queries.append(query)
        if request.query_params.get("format") != "json":
            return Response("format not allowed", status_code=403)
        behaviour = script.behaviours.pop(0) if script.behaviours else "ok"
        if behaviour == "empty":
            return JSONResponse({"query": query, "results": []})
        if behaviour == "error500":
            return Response("boom", status_code=500)
        if behaviour == "ratelimit":
            return Response("slow down", status_code=429)
        if behaviour == "malformed":
            return Response(b'{"results": [ {"url": ', media_type="application/json")
        if behaviour == "slow":
            await asyncio.sleep(script.slow_seconds)
        return JSONResponse({"query": query, "number_of_results": 3, "results": results_for(query)})

    return Starlette(routes=[Route("/search", search, methods=["GET"])])
