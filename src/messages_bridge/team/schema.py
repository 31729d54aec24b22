"""The tables (SQLAlchemy Core), identical on SQLite and PostgreSQL; migrations/ creates them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("models", String(1024)),  # comma-separated globs; NULL = every model
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("max_concurrency", Integer),
    Column("budget_usd", Float),
    Column("budget_period", String(8)),
)

api_key_secrets = Table(
    "api_key_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_name", String(64), ForeignKey("api_keys.name", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),  # set on the old secret by a rotation (its grace period)
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", String(36), primary_key=True),  # row id: replays of a spooled batch insert nothing twice
    Column("time", DateTime(timezone=True), nullable=False),
    Column("day", String(10), nullable=False),
    Column("request_id", String(128)),
    Column("key_name", String(160)),
    Column("session_id", String(128)),
    Column("agent_id", String(128)),
    Column("route", String(64), nullable=False),
    Column("upstream", String(128)),
    Column("model", String(128)),
    Column("upstream_model", String(128)),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_type", String(64)),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_input_tokens", BigInteger, nullable=False),
    Column("cache_creation_input_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("web_searches", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
)
Index("ix_ledger_time", ledger.c.time)
Index("ix_ledger_key_time", ledger.c.key_name, ledger.c.time)
Index("ix_api_key_secrets_key", api_key_secrets.c.key_name)
