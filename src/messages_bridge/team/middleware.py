"""Pure ASGI middleware around the `/v1` routes: after each response, settle its limits and ledger it.

It sits inside admission control, so a draining shutdown waits for it: every request's row is queued before
the ledger writer's final flush.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from messages_bridge.observability.record import record_of
from messages_bridge.team.gate import Team

LEDGERED_PREFIX = "/v1/"


class TeamMiddleware:
    def __init__(self, app: ASGIApp, *, team: Team | None = None) -> None:
        self.app = app
        self.team = team  # set by the lifespan (the app exists before the team is opened)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        team = self.team or _team_of(scope)
        if scope["type"] != "http" or team is None or not scope["path"].startswith(LEDGERED_PREFIX):
            await self.app(scope, receive, send)
            return
        record = record_of(scope)  # attached by the app's outermost middleware
        started_at = datetime.now(UTC)
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if status == 500 and record.disconnected:
                status = 499
            # Not shielded here (~4 µs a request): `finish` awaits only an owed debit, which it shields itself, so a
            # disconnect that cancels the handler cannot stop the row.
            await team.finish(scope, record, status, started_at)


def _team_of(scope: Scope) -> Team | None:
    app = scope.get("app")
    team = getattr(getattr(app, "state", None), "team", None)
    return team if isinstance(team, Team) else None
