"""The ledger in SQL: batch inserts (idempotent by row id), spend per key, and usage grouped for reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from messages_bridge.team.db import Database, sqlite_time
from messages_bridge.team.ledger import LedgerRow

GroupBy = Literal["key", "model", "upstream", "session", "day"]
GROUPS: tuple[GroupBy, ...] = ("key", "model", "upstream", "session", "day")
_COLUMN: dict[GroupBy, str] = {
    "key": "key_name",
    "model": "model",
    "upstream": "upstream",
    "session": "session_id",
    "day": "day",
}
SUMS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "cost_usd")
_FIELDS = LedgerRow.__struct_fields__  # the table's columns, in the row's order (a test ties them)
_TIME = _FIELDS.index("time")
_COLUMNS, _MARKS = ", ".join(_FIELDS), ", ".join("?" * len(_FIELDS))
# Names from LedgerRow's fields, never input; the values are bound.
_INSERT = f"INSERT INTO ledger ({_COLUMNS}) VALUES ({_MARKS}) ON CONFLICT (id) DO NOTHING"  # noqa: S608
_SPEND = "SELECT COALESCE(SUM(cost_usd), 0.0) FROM ledger WHERE key_name = ? AND time >= ?"


class SqlLedger:
    """The ledger table behind the `LedgerSink` interface, plus the queries reports need.

    Rows go in as plain tuples through the driver's `executemany` (one statement text for both databases):
    SQLAlchemy's per-row parameter processing cost more than SQLite's insert itself.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, rows: list[LedgerRow]) -> None:
        values = [msgspec.structs.astuple(r) for r in rows]
        if self.db.is_sqlite:
            values = [(*v[:_TIME], sqlite_time(v[_TIME]), *v[_TIME + 1 :]) for v in values]
        self.db.insert_many(_INSERT, values)

    def spend(self, key: str, since: datetime) -> float:
        rows = self.db.query(_SPEND, (key, self.db.time_param(since)))
        return float(rows[0][0])

    def usage(self, by: GroupBy, since: datetime | None = None) -> list[dict[str, object]]:
        """One row per value of `by`: requests and token and cost sums (the `usage` report and admin API)."""
        from sqlalchemy import func, select

        from messages_bridge.team.schema import ledger

        column = ledger.c[_COLUMN[by]]
        query = select(
            column.label(by),
            func.count().label("requests"),
            *(func.coalesce(func.sum(ledger.c[name]), 0).label(name) for name in SUMS),
        ).group_by(column)
        if since is not None:
            query = query.where(ledger.c.time >= since)
        with self.db.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            for name in SUMS[:-1]:
                row[name] = int(row[name])
            row["cost_usd"] = round(float(row["cost_usd"]), 6)
        if by == "day":
            return sorted(rows, key=lambda r: str(r["day"]))
        return sorted(rows, key=lambda r: (-float(r["cost_usd"]), -int(r["requests"]), str(r[by] or "")))
