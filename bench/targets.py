"""The systems under test: how to start each one and what its responses look like."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
LITELLM_CONFIG = BENCH_DIR / "litellm" / "config.yaml"
# One client key for every target; LiteLLM needs a master key that passes its strength check.
CLIENT_KEY = "sk-bench-4f1c2a9e7d3b8c6a5e0f1d2c3b4a5968"
UPSTREAM_KEY = "sk-bench"

# Substrings searched in response bodies; free of JSON spacing so any serializer matches.
ANTHROPIC_MARKERS = {
    "stream_first_token": "content_block_delta",
    "stream_first_token_tool": "content_block_delta",
    "stream_done": "message_stop",
    "json_done": '"stop_reason"',
}
RESPONSES_MARKERS = {
    "stream_first_token": "response.output_text.delta",
    "stream_first_token_tool": "response.function_call_arguments.delta",
    "stream_done": "response.completed",
    "json_done": '"output"',
}


@dataclass(frozen=True)
class Launch:
    """A command line and its extra environment."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class TargetSpec:
    """One target: availability check, launcher, response markers, and how long it may take to start."""

    name: str
    label: str
    check: Callable[[], str | None]  # None when available, else why it is skipped
    launch: Callable[[int, str, int | None], Launch]  # (port, upstream base URL, workers) -> Launch
    markers: dict[str, str]
    startup_timeout: float


def _bridge_pythonpath() -> dict[str, str]:
    src = REPO_DIR / "src"
    if (src / "messages_bridge").is_dir():
        return {"PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)}
    return {}


def bridge_check() -> str | None:
    """Skip reason for the gateway: it must be importable by this interpreter."""
    env = {**os.environ, **_bridge_pythonpath()}
    probe = subprocess.run(
        [sys.executable, "-c", "import messages_bridge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return f"`import messages_bridge` failed: {probe.stderr.strip().splitlines()[-1:] or 'no output'}"
    return None


def bridge_launch(port: int, upstream: str, workers: int | None) -> Launch:
    """python -m messages_bridge serve ..."""
    argv = [sys.executable, "-m", "messages_bridge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        argv += ["--workers", str(workers)]
    env = {"OPENAI_BASE_URL": upstream, "OPENAI_API_KEY": UPSTREAM_KEY, **_bridge_pythonpath()}
    if workers and workers > 1:  # per-process thread memory is refused with several workers; the load is stateless
        env["BRIDGE_THREADS"] = "off"
    return Launch(argv, env)


ROUTES_IN_BENCH_CONFIG = 50


def routing_config(upstream: str, routes: int = ROUTES_IN_BENCH_CONFIG) -> str:
    """A routing file with two upstreams (two keys each) and `routes` routes; only the last one matches the
    capture's model, after `routes - 2` globs that do not and one whose header condition fails."""
    lines = [
        "upstreams:",
        f"  primary: {{base_url: '{upstream}', api_keys: ['${{OPENAI_API_KEY}}', '${{OPENAI_API_KEY}}']}}",
        f"  secondary: {{base_url: '{upstream}', api_keys: ['${{OPENAI_API_KEY}}']}}",
        "models:",
        "  gpt-5: {reasoning_efforts: [minimal, low, medium, high], context_window: 400000, max_output_tokens: 128000}",
        "routes:",
    ]
    lines += [f"  - {{match: 'claude-variant-{i}-*', targets: [secondary/gpt-5-mini]}}" for i in range(routes - 2)]
    lines.append("  - {match: '*', when: {header: {x-bench-never: '*'}}, targets: [secondary/gpt-5]}")
    lines.append("  - {match: '*', targets: [primary/gpt-5, secondary/gpt-5]}")
    return "\n".join(lines) + "\n"


def routed_launch(port: int, upstream: str, workers: int | None) -> Launch:
    """The bridge with a 50-route, two-upstream routing file (BRIDGE_CONFIG) instead of OPENAI_BASE_URL."""
    launch = bridge_launch(port, upstream, workers)
    path = BENCH_DIR / "results" / "routing-bench.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(routing_config(upstream))
    env = {k: v for k, v in launch.env.items() if k != "OPENAI_BASE_URL"}
    return Launch(launch.argv, {**env, "BRIDGE_CONFIG": str(path)})


def floor_check() -> str | None:
    """The floor only needs this venv."""
    return None


def floor_launch(port: int, upstream: str, workers: int | None) -> Launch:
    """python -m bench.floor ... (always one worker)."""
    del workers
    argv = [sys.executable, "-m", "bench.floor", "--host", "127.0.0.1", "--port", str(port)]
    env = {"OPENAI_BASE_URL": upstream, "OPENAI_API_KEY": UPSTREAM_KEY, "PYTHONPATH": str(REPO_DIR)}
    return Launch(argv, env)


def litellm_check() -> str | None:
    """Skip reason for LiteLLM: its separate venv must exist."""
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        return f"{LITELLM_VENV.relative_to(REPO_DIR)} not found; install it with `bash bench/litellm/setup.sh`"
    return None


def litellm_launch(port: int, upstream: str, workers: int | None) -> Launch:
    """litellm --config bench/litellm/config.yaml ... (one worker unless told)."""
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(LITELLM_CONFIG),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers or 1),
    ]
    env = {
        "BENCH_UPSTREAM_BASE": upstream,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "LITELLM_MASTER_KEY": CLIENT_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch (and its retries) at start-up
        "LITELLM_LOG": "ERROR",  # also sets uvicorn's log level: no per-request access log line
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    return Launch(argv, env)


TARGETS: dict[str, TargetSpec] = {
    "bridge": TargetSpec("bridge", "messages-bridge", bridge_check, bridge_launch, ANTHROPIC_MARKERS, 60.0),
    "litellm": TargetSpec("litellm", "LiteLLM 1.108.7", litellm_check, litellm_launch, ANTHROPIC_MARKERS, 120.0),
    "floor": TargetSpec("floor", "pass-through floor", floor_check, floor_launch, RESPONSES_MARKERS, 30.0),
    "routed": TargetSpec("routed", "bridge, 50 routes", bridge_check, routed_launch, ANTHROPIC_MARKERS, 60.0),
}
