"""`messages-bridge keys …`, `usage`, `db upgrade`: operator commands on the team database.

Each opens the database named by the environment (`BRIDGE_DATABASE_URL`, else SQLite under `BRIDGE_DATA_DIR`)
and migrates it first. Secrets are printed once, alone on the last line of standard output.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from typing import Any

from messages_bridge.team.db import Database, make_engine, upgrade
from messages_bridge.team.keys import PERIODS, KeyError_, KeyStore, Limits, parse_duration
from messages_bridge.team.reports import GROUPS, SUMS, SqlLedger
from messages_bridge.team.settings import TeamSettings

COMMANDS = ("keys", "usage", "db")


def add_commands(sub: Any) -> None:
    """Add the team commands to the CLI's subparsers."""
    keys = sub.add_parser("keys", help="create, list, revoke and rotate named client keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("name")
    create.add_argument("--models", help="comma-separated model globs the key may use (default: all)")
    create.add_argument("--rpm", type=_positive, help="requests per minute")
    create.add_argument("--tpm", type=_positive, help="tokens per minute")
    create.add_argument("--max-concurrency", type=_positive, help="requests in flight at once")
    create.add_argument("--budget-usd", type=float, help="spend limit per budget period, US dollars")
    create.add_argument("--budget-period", choices=PERIODS, help="day, week or month (default month)")
    create.add_argument("--expires", help="lifetime, e.g. 90d, 12h (default: never)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = actions.add_parser("revoke", help="revoke a key (every replica within 10 s)")
    revoke.add_argument("name")
    rotate = actions.add_parser("rotate", help="new secret; the old one works for the grace period")
    rotate.add_argument("name")
    rotate.add_argument("--grace", default="1h", help="how long the old secret keeps working (default 1h)")

    usage = sub.add_parser("usage", help="usage and cost from the ledger")
    usage.add_argument("--by", choices=GROUPS, default="key", help="grouping (default key)")
    usage.add_argument("--since", help="only the last period, e.g. 7d, 24h (default: everything)")
    fmt = usage.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of rows")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header line")

    db = sub.add_parser("db", help="database schema")
    db_actions = db.add_subparsers(dest="action", required=True)
    db_actions.add_parser("upgrade", help="apply schema migrations (serve and keys do it on start)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def run(args: argparse.Namespace) -> int:
    settings = TeamSettings()
    engine = make_engine(settings)
    try:
        upgrade(engine)
        if args.command == "db":
            sys.stdout.write("database schema is up to date\n")
            return 0
        if args.command == "usage":
            return _usage(SqlLedger(Database(engine=engine)), args)
        return _keys(KeyStore(Database(engine=engine)), args)
    except KeyError_ as exc:
        sys.stderr.write(f"messages-bridge: {exc}\n")
        return 1
    finally:
        engine.dispose()


def _keys(store: KeyStore, args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.action == "create":
        if args.budget_period and args.budget_usd is None:
            raise KeyError_("--budget-period needs --budget-usd")
        if args.budget_usd is not None and args.budget_usd <= 0:
            raise KeyError_("--budget-usd must be positive")
        limits = Limits(
            models=tuple(m.strip() for m in (args.models or "").split(",") if m.strip()),
            rpm=args.rpm,
            tpm=args.tpm,
            max_concurrency=args.max_concurrency,
            budget_usd=args.budget_usd,
            budget_period=args.budget_period or "month",
        )
        expires = parse_duration(args.expires) if args.expires else None
        secret = store.create(args.name, limits, expires_in=expires)
        out.write(f"created key {args.name!r}; its secret is shown once:\n{secret}\n")
    elif args.action == "list":
        now = datetime.now(UTC)
        rows = [r.public(now) for r in store.load()]
        out.write(json.dumps(rows, indent=2) + "\n" if args.json else _table(rows))
    elif args.action == "revoke":
        store.revoke(args.name)
        out.write(f"revoked key {args.name!r} (every gateway stops accepting it within 10 s)\n")
    else:
        grace = parse_duration(args.grace)
        secret = store.rotate(args.name, grace=grace)
        out.write(f"rotated key {args.name!r}; the old secret works for {args.grace}; the new one:\n{secret}\n")
    return 0


def _usage(ledger: SqlLedger, args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - parse_duration(args.since) if args.since else None
    rows = ledger.usage(args.by, since)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=[args.by, "requests", *SUMS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        sys.stdout.write(_table(rows))
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "*"
    return str(value)


def migrate() -> None:
    """Apply migrations for `serve` (each worker checks again, harmlessly, when it starts)."""
    db = Database(TeamSettings())
    try:
        db.ensure_schema()
    finally:
        db.dispose()


def keys_guard_the_gateway() -> bool:
    """Whether JWTs are accepted or a named key exists: then no request gets through without a credential."""
    settings = TeamSettings()
    if settings.jwt_enabled:
        return True
    db = Database(settings)
    try:
        db.ensure_schema()
        return bool(KeyStore(db).load())
    finally:
        db.dispose()
