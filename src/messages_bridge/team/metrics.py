"""Team metrics; the `key` label holds admin-chosen key names (JWT identities are labelled by policy)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from messages_bridge.observability.metrics import PREFIX

KEY_REQUESTS = Counter(PREFIX + "key_requests_total", "Requests by key and status", ["key", "status"])
KEY_TOKENS = Counter(PREFIX + "key_tokens_total", "Tokens by key and kind", ["key", "kind"])
KEY_COST = Counter(PREFIX + "key_cost_usd_total", "Cost in US dollars by key", ["key"])
LIMITED = Counter(PREFIX + "key_limited_total", "Requests refused by a key's limit or budget", ["key", "limit"])
BUDGET_WARNINGS = Counter(PREFIX + "budget_warnings_total", "A key's spend crossed 80 % of its budget", ["key"])
BUDGET_USED = Gauge(
    PREFIX + "budget_used_ratio", "Spend / budget of the current period", ["key"], multiprocess_mode="max"
)
COUNTER_STORE_ERRORS = Counter(
    PREFIX + "limits_store_errors_total",
    "Limit/budget counter store (Redis) unreachable; requests were admitted (fail open) or refused (closed)",
    ["outcome"],
)
KEY_RELOAD_ERRORS = Counter(PREFIX + "key_reload_errors_total", "Key cache reloads that failed (stale keys kept)")
LEDGER_BACKLOG = Gauge(
    PREFIX + "ledger_backlog_rows", "Ledger rows not yet in the database (queued or spooled)", multiprocess_mode="sum"
)
LEDGER_WRITTEN = Counter(PREFIX + "ledger_rows_written_total", "Ledger rows written to the database")
LEDGER_SPOOLED = Counter(PREFIX + "ledger_rows_spooled_total", "Ledger rows spooled to disk (database unreachable)")
