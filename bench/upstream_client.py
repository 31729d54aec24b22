"""Talking to the running fake upstream (bench/upstream.py): its statistics and its controls."""

from __future__ import annotations

from typing import Any

import httpx

from bench.procs import HOST

JSON = dict[str, Any]


class UpstreamClient:
    """Talks to the fake upstream's /stats, /control and /last-request."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.http = httpx.Client(timeout=10.0)

    def stats(self) -> JSON:
        """GET /stats."""
        data: JSON = self.http.get(f"{self.base}/stats").json()
        return data

    def control(self, **changes: object) -> None:
        """POST /control."""
        self.http.post(f"{self.base}/control", json=changes).raise_for_status()

    def last_request(self) -> JSON:
        """The body of the last POST /v1/responses."""
        data: JSON = self.http.get(f"{self.base}/last-request").json()
        return data

    def responses_count(self) -> int:
        """How many POST /v1/responses the upstream has answered."""
        return int(self.stats()["requests"].get("POST /v1/responses", 0))
