"""`messages-bridge serve`: flags → Settings → uvicorn. No logic beyond checking the deployment is safe."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging
from messages_bridge.observability.multiproc import prepare_metrics_dir, remove_metrics_dir

logger = logging.getLogger("messages_bridge")
MAX_HEADER_BYTES = 64 * 1024  # h11's limit on a request head; httptools (llhttp) has its own 80 KiB limit
FINAL_SHUTDOWN_WAIT = 2

DEMO_BANNER = """
==========================================================================================
  DEMO MODE: no OPENAI_API_KEY and no OPENAI_BASE_URL are set, so answers come from the
  built-in Responses API simulator, not from a real model. Set OPENAI_API_KEY (and
  optionally OPENAI_BASE_URL) to use a real upstream.
==========================================================================================
"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="messages-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="bind address (BRIDGE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BRIDGE_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (BRIDGE_WORKERS, default 1)")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="allow a non-loopback bind without BRIDGE_API_KEYS",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="BRIDGE_LOG_LEVEL")
    serve.add_argument("--log-format", choices=["json", "console"], help="BRIDGE_LOG_FORMAT")
    serve.add_argument("--ping-interval", type=float, help="seconds between stream pings (BRIDGE_PING_INTERVAL)")
    serve.add_argument("--max-body-bytes", type=int, help="request body limit (BRIDGE_MAX_BODY_BYTES)")
    serve.add_argument("--read-timeout", type=float, help="upstream read timeout (BRIDGE_READ_TIMEOUT)")
    serve.add_argument("--connect-timeout", type=float, help="upstream connect timeout (BRIDGE_CONNECT_TIMEOUT)")
    serve.add_argument("--max-retries", type=int, help="upstream retries before the first byte (BRIDGE_MAX_RETRIES)")
    serve.add_argument("--max-retry-wait", type=float, help="longest retry-after waited out (BRIDGE_MAX_RETRY_WAIT)")
    serve.add_argument("--retry-budget", type=float, help="retry time per request (BRIDGE_RETRY_BUDGET)")
    serve.add_argument("--max-concurrency", type=int, help="upstream requests in flight (BRIDGE_MAX_CONCURRENCY)")
    serve.add_argument("--shutdown-grace", type=float, help="drain time on SIGTERM (BRIDGE_SHUTDOWN_GRACE)")
    serve.add_argument("--model-map", help="BRIDGE_MODEL_MAP, JSON or name=model,...")
    serve.add_argument("--default-model", help="BRIDGE_DEFAULT_MODEL")
    return parser


def export_flags(args: argparse.Namespace) -> None:
    """Flags become `BRIDGE_*` variables, so every uvicorn worker process builds the same Settings."""
    for name, value in vars(args).items():
        if name != "command" and value is not None:
            os.environ[f"BRIDGE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)


def check_deployment(settings: Settings) -> str | None:
    """A reason to refuse to start, or None."""
    if is_loopback(settings.host):
        return None
    if settings.demo:
        return "refusing to serve the demo upstream on a non-loopback address; set OPENAI_API_KEY or bind 127.0.0.1"
    if not settings.api_keys and not settings.allow_unauthenticated:
        return (
            "refusing to bind a non-loopback address without BRIDGE_API_KEYS; "
            "pass --allow-unauthenticated to do it anyway"
        )
    return None


def serve(settings: Settings) -> int:
    problem = check_deployment(settings)
    if problem is not None:
        sys.stderr.write(f"messages-bridge: {problem}\n")
        return 2
    if settings.demo:
        sys.stderr.write(DEMO_BANNER)
    configure_logging(settings)
    metrics_dir = prepare_metrics_dir(settings.workers)
    try:
        _run(settings)
    finally:
        remove_metrics_dir(metrics_dir)
    return 0


def _run(settings: Settings) -> None:
    uvicorn.run(
        "messages_bridge.app.asgi:app",
        factory=False,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
        # uvicorn's default log config prints exception messages; ours (observability/logs.py) prints types only.
        log_config=None,
        loop="auto",
        http="auto",
        # The app drains first (see app/lifecycle.py), so uvicorn's own wait only flushes what is left.
        timeout_graceful_shutdown=FINAL_SHUTDOWN_WAIT,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    export_flags(args)
    return serve(Settings())
