"""Alembic environment: the connection comes from `messages_bridge.team.db.upgrade` (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from messages_bridge.team.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
