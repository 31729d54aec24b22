"""The SQL engine (SQLite file or PostgreSQL) and schema migrations (Alembic, applied at start-up).

Alembic (~10 MiB resident) is imported only when the database is not already at `HEAD`: a gateway starting on
an up-to-date schema reads one row and moves on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

from messages_bridge.team.migrations import HEAD
from messages_bridge.team.settings import TeamSettings

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x6D62_7231  # advisory lock: one worker or replica migrates at a time
CONNECT_TIMEOUT = 3


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
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (reports, key reloads) never wait for the ledger writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(settings: TeamSettings) -> Engine:
    url = database_url(settings)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 5, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=4, max_overflow=4, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; serialized across processes on PostgreSQL)."""
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
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)
