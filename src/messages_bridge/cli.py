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
from messages_bridge.routing.config_file import ConfigError, load_config
from messages_bridge.routing.table import render
from messages_bridge.serving.options import raise_open_file_limit, uvicorn_options
from messages_bridge.team import cli as team_cli
from messages_bridge.threads.setup import threads_problem

logger = logging.getLogger("messages_bridge")
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


def _flag_help(name: str) -> str:
    field = Settings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    shown = "unset" if default in (None, ()) else default
    return f"{field.description or ''} (BRIDGE_{name.upper()}, default {shown})".lstrip()


def _parser() -> argparse.ArgumentParser:
    """One `--flag` per `BRIDGE_*` setting, generated from `Settings` so the two can never drift apart."""
    parser = argparse.ArgumentParser(prog="messages-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway", argument_default=None)
    for name, field in Settings.model_fields.items():
        if name.startswith("openai_") or name in ("api_keys", "threads_key", "redis_url"):
            continue  # secrets come from the environment only: a command line is visible to every local user
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            serve.add_argument(flag, action=argparse.BooleanOptionalAction, help=_flag_help(name))
        else:
            serve.add_argument(flag, help=_flag_help(name))
    config = sub.add_parser("config", help="routing file tools").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate a routing file and print its routing table (secrets masked)")
    check.add_argument("path", nargs="?", help="the file (default: BRIDGE_CONFIG)")
    team_cli.add_commands(sub)
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


def check_config(path: str | None) -> int:
    """`config check`: 0 and the table for a valid file; 2 and the reason (naming the field) otherwise."""
    path = path or os.environ.get("BRIDGE_CONFIG")
    if not path:
        sys.stderr.write("messages-bridge: config check needs a PATH (or BRIDGE_CONFIG)\n")
        return 2
    try:
        config, warnings = load_config(path)
    except ConfigError as exc:
        sys.stderr.write(f"messages-bridge: invalid routing file: {exc}\n")
        return 2
    for warning in warnings:
        sys.stderr.write(f"messages-bridge: warning: {warning}\n")
    sys.stdout.write(render(config, Settings()))
    return 0


def serve(settings: Settings) -> int:
    problem = check_deployment(settings)
    if problem is not None and not settings.demo and team_cli.keys_guard_the_gateway():
        problem = None  # named keys or JWTs: every request needs a credential, like BRIDGE_API_KEYS
    problem = problem or threads_problem(settings)
    if problem is not None:
        sys.stderr.write(f"messages-bridge: {problem}\n")
        return 2
    if settings.config is not None:
        try:
            load_config(settings.config)
        except ConfigError as exc:
            sys.stderr.write(f"messages-bridge: invalid routing file: {exc}\n")
            return 2
    if settings.demo:
        sys.stderr.write(DEMO_BANNER)
    configure_logging(settings)
    team_cli.migrate()  # once, before the workers start
    metrics_dir = prepare_metrics_dir(settings.workers)
    try:
        _run(settings)
    finally:
        remove_metrics_dir(metrics_dir)
    return 0


def _run(settings: Settings) -> None:
    open_files = raise_open_file_limit()  # before the workers start: they inherit it
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
        # The app drains first (see app/lifecycle.py), so uvicorn's own wait only flushes what is left.
        timeout_graceful_shutdown=FINAL_SHUTDOWN_WAIT,
        # Head/body limits and timeouts, the connection cap (serving/protocol.py): enforced before the app.
        **uvicorn_options(settings, open_files=open_files),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in team_cli.COMMANDS:
        return team_cli.run(args)
    if args.command == "config":
        return check_config(args.path)
    export_flags(args)
    return serve(Settings())
