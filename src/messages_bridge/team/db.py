"""The team database (SQLite file or PostgreSQL) and its schema migrations (Alembic, applied at start-up).

`Database` is what the gateway's hot and periodic work goes through — the ledger insert, the key reload, a key's
spend — as plain SQL text, the same for both databases: through the stdlib `sqlite3` driver for the SQLite file,
through SQLAlchemy's pooled engine for PostgreSQL. SQLAlchemy (~13 MiB resident with its engine) and Alembic
(~10 MiB more) are imported only when needed: for PostgreSQL, for a migration (a database behind `HEAD`), and for
key changes and usage reports (`Database.engine`). A gateway on an up-to-date SQLite file loads neither.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from messages_bridge.team.migrations import HEAD
from messages_bridge.team.settings import TeamSettings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x6D62_7231  # advisory lock: one worker or replica migrates at a time
CONNECT_TIMEOUT = 3
SQLITE_TIMEOUT = 5.0
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers (reports, key reloads) never wait for the ledger writer
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def database_url(settings: TeamSettings) -> str:
    """The SQLAlchemy URL: PostgreSQL through psycopg 3 when configured, else the SQLite file."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.sqlite_path}"


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def make_engine(settings: TeamSettings) -> Engine:
    from sqlalchemy import create_engine, event

    url = database_url(settings)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=4, max_overflow=4, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; serialized across processes on PostgreSQL)."""
    from sqlalchemy import text

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        if _revision(connection) == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines say nothing an operator needs
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _revision(connection: Connection) -> str | None:
    """The schema's revision as Alembic recorded it (None on a new database)."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def stored_time(value: datetime | str | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back the text SQLAlchemy wrote, without a zone)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite (naive, always with microseconds), so both read it back."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class Database:
    """Plain SQL on the team database; blocking calls (run them off the event loop). Placeholders are `?`."""

    def __init__(self, settings: TeamSettings | None = None, *, engine: Engine | None = None) -> None:
        """From `settings` (the default SQLite file through `sqlite3`, a `BRIDGE_DATABASE_URL` through an engine),
        or over an `engine` built elsewhere (the operator commands, tests)."""
        self._settings = settings
        self._path: str | None = None
        if engine is None and settings is not None and settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._path = str(settings.sqlite_path)
        elif engine is None:
            if settings is None:
                raise TypeError("Database needs settings or an engine")
            engine = make_engine(settings)
        self._engine = engine
        self.is_sqlite = engine is None or engine.dialect.name == "sqlite"
        self._mark = "?" if engine is None or engine.dialect.paramstyle == "qmark" else "%s"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """SQLAlchemy's engine on the same database, built on first use (migrations, key changes, reports)."""
        if self._engine is None:
            assert self._settings is not None  # without settings an engine was given
            self._engine = make_engine(self._settings)
        return self._engine

    def time_param(self, value: datetime) -> datetime | str:
        """A time as this database's driver takes it in a comparison with a stored time."""
        return sqlite_time(value) if self.is_sqlite else value

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        sql = self._sql(sql)
        if self._direct:
            with self._lock:
                return self._connection().execute(sql, params).fetchall()
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql, tuple(params))]

    def insert_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """One transaction: every row or none."""
        sql = self._sql(sql)
        if not self._direct:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(sql, list(rows))
            return
        with self._lock:
            direct = self._connection()
            direct.execute("BEGIN")
            try:
                direct.executemany(sql, rows)
            except BaseException:
                direct.execute("ROLLBACK")
                raise
            direct.execute("COMMIT")

    def ensure_schema(self) -> None:
        """Migrate when behind `HEAD` (only then are SQLAlchemy and Alembic loaded for SQLite)."""
        if self._direct and self._revision() == HEAD:
            return
        upgrade(self.engine)

    def dispose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._engine is not None:
            self._engine.dispose()

    @property
    def _direct(self) -> bool:
        """Through `sqlite3` (the default SQLite file), not an engine."""
        return self._path is not None

    def _sql(self, sql: str) -> str:
        return sql if self._mark == "?" else sql.replace("?", self._mark)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self._path is not None  # called only when `_direct`
            conn = sqlite3.connect(self._path, timeout=SQLITE_TIMEOUT, isolation_level=None, check_same_thread=False)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    def _revision(self) -> str | None:
        try:
            rows = self.query("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError:  # no such table: a new database
            return None
        return str(rows[0][0]) if rows else None
