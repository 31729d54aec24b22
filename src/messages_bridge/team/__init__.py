"""Team gateway: named keys, per-key limits and budgets, and the usage ledger.

Two storage set-ups, one code path: SQLite under `BRIDGE_DATA_DIR` with counters in memory (the default, no
services), or PostgreSQL (`BRIDGE_DATABASE_URL`) with counters in Redis (`BRIDGE_REDIS_URL`) across replicas.
"""
