"""Message threads (beta `message-threads-2026-08-12`): conversations the gateway holds between turns.

A `create` stores the conversation under its reply's id; a `continue` names that id and sends only the new
messages. The gateway rebuilds a complete request from the stored thread and sends it down the ordinary stateless
path, then stores the reply once it is complete. `store` is the interface (`memory` for one process, `redis` for
several), `rebuild` the pure request surgery, `reply` the reply capture, `service` the one entry point the routes use.
"""
