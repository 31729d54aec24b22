"""The team gateway as the routes see it: authenticate, admit (limits and budget), then ledger and settle.

`Team.open` builds it from `TeamSettings`: the SQL engine (migrated), the key ring, the counters (Redis when
`BRIDGE_REDIS_URL` is set, else memory), the limiter and the ledger writer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import anyio
from asgi_correlation_id import correlation_id
from prometheus_client import Counter
from sqlalchemy import Engine
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

from messages_bridge.app.auth import presented_key
from messages_bridge.errors import PermissionDeniedError
from messages_bridge.observability.record import RequestRecord
from messages_bridge.team.budget import NANO, PriceTable, StaticPriceTable
from messages_bridge.team.counters import Counters, MemoryCounters
from messages_bridge.team.db import make_engine, upgrade
from messages_bridge.team.identity import Identity, identity_of, set_identity
from messages_bridge.team.keyring import KeyRing
from messages_bridge.team.keys import KeyStore, Limits
from messages_bridge.team.ledger import LedgerRow, LedgerWriter
from messages_bridge.team.limits import Limiter, Ticket
from messages_bridge.team.metrics import KEY_COST, KEY_REQUESTS, KEY_TOKENS
from messages_bridge.team.reports import SqlLedger
from messages_bridge.team.settings import TeamSettings
from messages_bridge.team.tokens import JwtVerifier
from messages_bridge.translate.usage import TokenUsage

SESSION_HEADER = b"x-claude-code-session-id"
AGENT_HEADER = b"x-claude-code-agent-id"
_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_TICKET = "team_ticket"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Claude Code's session and sub-agent ids, when sent and well-formed."""

    session_id: str | None
    agent_id: str | None


def attribution(scope: Scope) -> Attribution:
    session = agent = None
    for name, value in scope["headers"]:
        if name == SESSION_HEADER:
            session = value.decode("latin-1")
        elif name == AGENT_HEADER:
            agent = value.decode("latin-1")
    return Attribution(_safe(session), _safe(agent))


def _safe(value: str | None) -> str | None:
    return value if value is not None and _SAFE.match(value) else None


def policies_from(raw: Mapping[str, Mapping[str, object]]) -> dict[str, Limits]:
    out: dict[str, Limits] = {}
    for name, spec in raw.items():
        models = spec.get("models", ())
        out[name] = Limits(
            models=tuple(models.split(",")) if isinstance(models, str) else tuple(str(m) for m in models),  # type: ignore[attr-defined]
            rpm=_int(spec.get("rpm")),
            tpm=_int(spec.get("tpm")),
            max_concurrency=_int(spec.get("max_concurrency")),
            budget_usd=None if spec.get("budget_usd") is None else float(str(spec["budget_usd"])),
            budget_period=str(spec.get("budget_period", "month")),  # type: ignore[arg-type]
        )
    return out


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _usage(record: RequestRecord) -> TokenUsage:
    return TokenUsage(record.input_tokens, record.output_tokens, record.cache_read_tokens, record.cache_creation_tokens)


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) * 1000, 2)


class Team:
    def __init__(
        self,
        settings: TeamSettings,
        *,
        engine: Engine,
        counters: Counters,
        prices: PriceTable,
        shared_keys: tuple[str, ...],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = KeyStore(engine)
        self.ledger = SqlLedger(engine)
        jwt = JwtVerifier(settings, policies_from(settings.policies)) if settings.jwt_enabled else None
        self.keyring = KeyRing(self.store, shared=shared_keys, ttl=settings.key_cache_seconds, jwt=jwt)
        self.limiter = Limiter(counters, prices, fail_open=settings.redis_failure == "open", spend_source=self._spend)
        self.writer = LedgerWriter(
            self.ledger,
            settings.spool_dir,
            batch_size=settings.ledger_batch_size,
            flush_interval=settings.ledger_flush_interval,
            retry_interval=settings.ledger_retry_interval,
        )
        self._requests: dict[tuple[str, int], Counter] = {}
        self._series: dict[str, list[Counter]] = {}

    @classmethod
    async def open(
        cls,
        settings: TeamSettings,
        *,
        shared_keys: tuple[str, ...] = (),
        prices: PriceTable | None = None,
    ) -> Team:
        """Migrate the schema, load the keys, start the ledger writer."""
        engine = make_engine(settings)
        await asyncio.to_thread(upgrade, engine)
        counters: Counters
        if settings.redis_url is not None:
            from messages_bridge.team.redis_counters import RedisCounters

            counters = RedisCounters(settings.redis_url.get_secret_value())
        else:
            counters = MemoryCounters()
        team = cls(
            settings,
            engine=engine,
            counters=counters,
            prices=prices or StaticPriceTable(settings.prices),
            shared_keys=shared_keys,
        )
        await team.keyring.reload()
        await team.writer.start()
        return team

    async def aclose(self) -> None:
        await self.keyring.aclose()
        await self.writer.aclose()
        await self.limiter.counters.aclose()
        await asyncio.to_thread(self.engine.dispose)

    async def _spend(self, key: str, since: datetime) -> float:
        return await asyncio.to_thread(self.ledger.spend, key, since)

    async def authenticate(self, conn: HTTPConnection, headers: Mapping[str, str]) -> Identity:
        """The caller's identity (401 when a key is needed and missing or wrong), kept on the request state."""
        identity = await self.keyring.authenticate(presented_key(headers))
        set_identity(conn, identity)
        return identity

    async def admit(
        self,
        conn: HTTPConnection,
        *,
        model: str,
        upstream_model: str,
        estimate: Callable[[], int],
        limited: bool = True,
    ) -> Ticket:
        """403 outside the key's models; with `limited`, the key's limits and budget (429/402)."""
        identity = identity_of(conn)
        if identity is None:
            raise PermissionDeniedError("request was not authenticated")
        limits = identity.limits
        if not (limits.allows_model(model) or limits.allows_model(upstream_model)):
            raise PermissionDeniedError(f"API key {identity.tenant!r} may not use model {model!r}")
        if not limited:
            return Ticket(identity, None, self.limiter.prices.price_for(upstream_model))
        tokens = estimate() if limits.tpm is not None or limits.budget_usd is not None else 0
        ticket = await self.limiter.admit(identity, upstream_model=upstream_model, estimate=tokens)
        conn.scope.setdefault("state", {})[_TICKET] = ticket
        return ticket

    def _priced(self, ticket: Ticket, record: RequestRecord) -> Ticket:
        """The price of the model that answered (a failover may have moved to another than the first target's)."""
        if record.upstream_model and not ticket.settled:
            ticket.price = self.limiter.prices.price_for(record.upstream_model)
        return ticket

    @staticmethod
    def decorate(conn: HTTPConnection, response: Response) -> Response:
        """The key's `anthropic-ratelimit-*` headers on a successful answer (they replace the upstream's)."""
        ticket = conn.scope.get("state", {}).get(_TICKET)
        if isinstance(ticket, Ticket) and ticket.headers:
            ours = [(name.encode(), value.encode()) for name, value in ticket.headers.items()]
            names = {name for name, _ in ours}
            response.raw_headers[:] = [h for h in response.raw_headers if h[0] not in names] + ours
        return response

    async def settle(self, conn: HTTPConnection, record: RequestRecord) -> None:
        """Debit the request's real usage now (a non-streaming answer, before it is sent); else `finish` does."""
        ticket = conn.scope.get("state", {}).get(_TICKET)
        if isinstance(ticket, Ticket):
            await self.limiter.settle(self._priced(ticket, record), _usage(record))

    async def finish(self, scope: Scope, record: RequestRecord, status: int, started_at: datetime) -> None:
        """After the response: settle the ticket, count the key's metrics, queue the ledger row."""
        state = scope.get("state") or {}
        identity = state.get("identity")
        ticket = state.get(_TICKET)
        usage = _usage(record)
        cost = 0
        if isinstance(ticket, Ticket):
            priced = self._priced(ticket, record)
            if ticket.owed:  # the one await here: shielded, a disconnect cancels the handler, not the debit and row
                with anyio.CancelScope(shield=True):
                    cost = await self.limiter.settle(priced, usage)
            else:
                cost = await self.limiter.settle(priced, usage)  # nothing owed: returns without awaiting
        elif record.upstream_model:
            price = self.limiter.prices.price_for(record.upstream_model)
            cost = (
                price.cost_nano(
                    input_tokens=usage.input_tokens,
                    cache_read=usage.cache_read,
                    cache_creation=usage.cache_creation,
                    output_tokens=usage.output_tokens,
                )
                if price
                else 0
            )
        name: str | None = None
        label = "anonymous"
        if isinstance(identity, Identity):
            name = identity.name if identity.kind != "shared" else identity.tenant
            label = identity.label
        self._count(label, status, usage, record.reasoning_tokens, cost)
        route = scope.get("route")
        who = attribution(scope)
        now = time.perf_counter()
        self.writer.submit(
            LedgerRow(
                time=started_at,
                day=started_at.date().isoformat(),  # YYYY-MM-DD, as strftime("%Y-%m-%d") at a tenth of the cost
                request_id=correlation_id.get(),
                key_name=name,
                session_id=who.session_id,
                agent_id=who.agent_id,
                route=getattr(route, "path", None) or scope["path"][:64],
                upstream=record.upstream,
                model=record.model,
                upstream_model=record.upstream_model,
                stream=record.stream,
                status=status,
                error_type=record.error_type or record.upstream_error_type,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_input_tokens=usage.cache_read,
                cache_creation_input_tokens=usage.cache_creation,
                reasoning_tokens=record.reasoning_tokens,
                web_searches=record.web_searches,
                cost_usd=cost / NANO,
                latency_ms=_ms(record.started, now),
                ttft_ms=_ms(record.started, record.first_token),
            )
        )

    def _count(self, label: str, status: int, usage: TokenUsage, reasoning: int, cost: int) -> None:
        """The key's series; children are cached (labels() per call costs more than the increments)."""
        requests = self._requests.get((label, status))
        if requests is None:
            requests = self._requests[(label, status)] = KEY_REQUESTS.labels(label, str(status))
        requests.inc()
        series = self._series.get(label)
        if series is None:
            kinds = ("input", "output", "cache_read", "cache_creation", "reasoning")
            series = self._series[label] = [*(KEY_TOKENS.labels(label, k) for k in kinds), KEY_COST.labels(label)]
        values = (usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_creation, reasoning)
        for child, value in zip(series, values, strict=False):
            if value:
                child.inc(value)
        if cost:
            series[-1].inc(cost / NANO)


def team_of(conn: HTTPConnection) -> Team:
    team: Team = conn.app.state.team
    return team
