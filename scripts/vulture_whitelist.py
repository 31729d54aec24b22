"""Names vulture cannot see being used (read by `scripts/check`; never imported or run).

Every entry says why it is not dead. Keep it short: code that nothing uses is deleted, not listed here.
"""

# ruff: noqa

_ = object()

# pydantic-settings reads these by convention (settings config, field validators).
model_config
_._parse_keys
_._parse_list
_._parse_map
cls

# Starlette's router reads it: no trailing-slash redirect built from the client's Host header.
_.redirect_slashes

# Stdlib logging flags, assigned so records skip work the formatter never prints.
_.logMultiprocessing
_.logProcesses
_.logThreads

# Wire shapes: fields declared so msgspec validates (or skips) them and TypedDict keys the encoder writes.
# Request fields decided as no-ops or refusals (protocol/request_fields.py reads them with getattr).
cache_control
context_management
betas
user_profile_id
workspace_id
billing_policy
compaction
mcp_servers
top_k
thread
diagnostics
inference_geo
fallback_credit_token
container
fallbacks
legacy
# Request block and tool fields that are validated but not translated (refused sources, server-tool options).
file_id
defer_loading
allowed_domains
blocked_domains
user_location
max_uses
# Keys of answers and events built as TypedDicts or encoded structs.
cache_creation_input_tokens
cache_read_input_tokens
category
explanation
partial_json
content_block
image_url
file_data
file_url
parameters
store
include
max_output_tokens
parallel_tool_calls
safety_identifier
prompt_cache_key
stream_options
# Upstream stream event fields decoded for their shape.
output_index
summary_index

# The tests' fake upstream (demo/server.py `Script`) and the transport's leak counter are read by the test suite:
# they are the seams tests use to script the upstream and to prove connections are released.
_.push
_.open_responses

# Web search wire fields: written into TypedDicts/structs that are encoded for the client or the upstream.
web_search_requests
encrypted_index
filters
max_tool_calls
queries

# Routing file (routing/config_file.py): a pydantic model validator, and the model price the usage ledger reads.
_._targets_exist
price
cached_input
# Reloader counters: how many reloads took (or failed); the reload tests wait on them.
_.reloads

# Web search config: a pydantic field validator (YAML reads an unquoted `off` as false).
_yaml_off

# Message threads: the fixed field read by name (threads/rebuild.FIXED_FIELDS via getattr), a timestamp kept with
# each thread (the issue asks for it; stored, never read back), and the memory store's counters read by tests.
output_format
updated
_.evicted
_.total_bytes

# asyncio calls a protocol's data_received (serving/protocol.py overrides uvicorn's).
_.data_received

# Team gateway: pydantic validator; ledger row fields written by `msgspec.structs.astuple`; Alembic reads a
# migration's module globals and functions.
_._parse_json
agent_id
session_id
cost_usd
latency_ms
ttft_ms
revision
down_revision
branch_labels
depends_on
downgrade
