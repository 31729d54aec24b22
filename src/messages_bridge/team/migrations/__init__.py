"""Alembic migrations of the team database (env.py, versions/)."""

HEAD = "0001"  # the newest revision in versions/ (a test checks it against Alembic's own view)
