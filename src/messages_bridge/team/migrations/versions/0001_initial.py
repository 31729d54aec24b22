"""Keys, their secrets, and the usage ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("models", sa.String(1024)),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.BigInteger),
        sa.Column("max_concurrency", sa.Integer),
        sa.Column("budget_usd", sa.Float),
        sa.Column("budget_period", sa.String(8)),
    )
    op.create_table(
        "api_key_secrets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_name", sa.String(64), sa.ForeignKey("api_keys.name", ondelete="CASCADE"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_api_key_secrets_key", "api_key_secrets", ["key_name"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("key_name", sa.String(160)),
        sa.Column("session_id", sa.String(128)),
        sa.Column("agent_id", sa.String(128)),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("upstream", sa.String(128)),
        sa.Column("model", sa.String(128)),
        sa.Column("upstream_model", sa.String(128)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
        sa.Column("web_searches", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
    )
    op.create_index("ix_ledger_time", "ledger", ["time"])
    op.create_index("ix_ledger_key_time", "ledger", ["key_name", "time"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("api_key_secrets")
    op.drop_table("api_keys")
