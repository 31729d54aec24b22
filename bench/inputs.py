"""The request a run sends: bodies per mode and the client headers, taken from a real Claude Code capture."""

from __future__ import annotations

import json

from bench.options import RESULTS_DIR, BenchOptions
from bench.targets import CLIENT_KEY

DROPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding", "x-api-key", "authorization"}


def prepare_inputs(options: BenchOptions) -> None:
    """Write the stream / non-stream request bodies and pick the client headers from the capture."""
    capture = json.loads(options.capture.read_text())
    request = capture["request"]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for mode in options.modes:
        body = {**request["body"], "stream": mode == "stream"}
        path = RESULTS_DIR / f"body-{mode}.json"
        path.write_text(json.dumps(body, separators=(",", ":")))
        options.bodies[mode] = path
    headers = {k: v for k, v in request["headers"].items() if k.lower() not in DROPPED_HEADERS}
    headers["x-api-key"] = CLIENT_KEY
    options.headers = [f"{k}: {v}" for k, v in headers.items()]
