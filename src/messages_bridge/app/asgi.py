"""The ASGI entry point uvicorn imports (also in each worker process): settings come from the environment.

The CLI exports its flags as `BRIDGE_*` variables before starting uvicorn, so workers see the same settings. Once
the app is built, the process's garbage collector is tuned for serving (serving/heap.py).
"""

from __future__ import annotations

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.observability.logs import configure_logging, log_startup
from messages_bridge.serving import heap

settings = Settings()
configure_logging(settings)
log_startup(settings)
app = create_app(settings)
heap.settle()
