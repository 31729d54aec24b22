"""The ledger in SQL: batch inserts (idempotent by row id), spend per key, and usage grouped for reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec
from sqlalchemy import Engine, func, select

from messages_bridge.team.ledger import LedgerRow
from messages_bridge.team.schema import ledger

GroupBy = Literal["key", "model", "upstream", "session", "day"]
GROUPS: tuple[GroupBy, ...] = ("key", "model", "upstream", "session", "day")
_COLUMN = {
    "key": ledger.c.key_name,
    "model": ledger.c.model,
    "upstream": ledger.c.upstream,
    "session": ledger.c.session_id,
    "day": ledger.c.day,
}
SUMS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "cost_usd")


_FIELDS = LedgerRow.__struct_fields__  # the table's columns, in the row's order
_TIME = _FIELDS.index("time")


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite (naive, always with microseconds), so it reads it back."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class SqlLedger:
    """The ledger table behind the `LedgerSink` interface, plus the queries reports need.

    Rows go in as plain tuples through the driver's `executemany` (one statement text, built once): SQLAlchemy's
    per-row parameter processing cost more than SQLite's insert itself.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sqlite = engine.dialect.name == "sqlite"
        columns, marks = ", ".join(_FIELDS), ", ".join([mark] * len(_FIELDS))
        # Names from LedgerRow's fields (tied to the table by a test), never input; the values are bound.
        self._insert = f"INSERT INTO ledger ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"  # noqa: S608

    def write(self, rows: list[LedgerRow]) -> None:
        values = [msgspec.structs.astuple(r) for r in rows]
        if self._sqlite:
            values = [(*v[:_TIME], _sqlite_time(v[_TIME]), *v[_TIME + 1 :]) for v in values]
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._insert, values)

    def spend(self, key: str, since: datetime) -> float:
        query = select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(
            ledger.c.key_name == key, ledger.c.time >= since
        )
        with self.engine.connect() as conn:
            return float(conn.execute(query).scalar_one())

    def usage(self, by: GroupBy, since: datetime | None = None) -> list[dict[str, object]]:
        """One row per value of `by`: requests and token and cost sums (the `usage` report and admin API)."""
        column = _COLUMN[by]
        query = select(
            column.label(by),
            func.count().label("requests"),
            *(func.coalesce(func.sum(ledger.c[name]), 0).label(name) for name in SUMS),
        ).group_by(column)
        if since is not None:
            query = query.where(ledger.c.time >= since)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            for name in SUMS[:-1]:
                row[name] = int(row[name])
            row["cost_usd"] = round(float(row["cost_usd"]), 6)
        if by == "day":
            return sorted(rows, key=lambda r: str(r["day"]))
        return sorted(rows, key=lambda r: (-float(r["cost_usd"]), -int(r["requests"]), str(r[by] or "")))
