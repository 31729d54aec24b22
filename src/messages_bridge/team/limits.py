"""Per-key limits and budgets: admit a request (or refuse it with 429/402), then settle its real usage.

Refusals carry `retry-after` and `anthropic-ratelimit-*` headers describing the key's own limits, so Claude
Code and the Anthropic SDKs back off by themselves. When the counter store is unreachable the request is
admitted (`redis_failure=open`, the default, counted in `limits_store_errors_total`) or refused with 529.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Gauge

from messages_bridge.errors import BillingError, GatewayError, OverloadedError, RateLimitError
from messages_bridge.team.budget import NANO, WARN_RATIO, Price, PriceTable, period_end, period_id, period_start
from messages_bridge.team.counters import WINDOW, Ask, Counters, CountersUnavailable, Settlement, Verdict
from messages_bridge.team.identity import Identity
from messages_bridge.team.keys import Period
from messages_bridge.team.metrics import BUDGET_USED, BUDGET_WARNINGS, COUNTER_STORE_ERRORS, LIMITED
from messages_bridge.translate.usage import TokenUsage

logger = logging.getLogger("messages_bridge.team")
SpendSource = Callable[[str, datetime], Awaitable[float]]  # (key, period start) -> USD spent per the ledger
_LOUD_EVERY = 10.0
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}
_LEASE_PREFIX = secrets.token_hex(6)  # leases are unique per process by counter, across processes by this prefix
_LEASES = itertools.count()


@functools.lru_cache(maxsize=64)
def _period(period: Period, day: int) -> tuple[str, float]:
    """(period id, end as a Unix time) of the period holding UTC day `day` (an ordinal): computed once a day."""
    moment = datetime.fromordinal(day).replace(tzinfo=UTC)
    return period_id(period, moment), period_end(period, moment).timestamp()


@functools.lru_cache(maxsize=256)
def _rfc3339_at(epoch_second: int) -> str:
    return _rfc3339(datetime.fromtimestamp(epoch_second, UTC))


@dataclass(slots=True)
class Ticket:
    """An admitted request: what it holds on the counters until it settles."""

    identity: Identity
    ask: Ask | None  # None: nothing to settle (no limits, or the store was down)
    price: Price | None
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False

    @property
    def owed(self) -> bool:
        """A debit still to make on the counters: settling awaits the store (else it returns without awaiting)."""
        return self.ask is not None and not self.settled


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.6g}"


def cost_nano(price: Price | None, usage: TokenUsage) -> int:
    if price is None:
        return 0
    return price.cost_nano(
        input_tokens=usage.input_tokens,
        cache_read=usage.cache_read,
        cache_creation=usage.cache_creation,
        output_tokens=usage.output_tokens,
    )


class Limiter:
    def __init__(
        self, counters: Counters, prices: PriceTable, *, fail_open: bool, spend_source: SpendSource | None = None
    ) -> None:
        self.counters = counters
        self.prices = prices
        self.fail_open = fail_open
        self._spend_source = spend_source
        self._seeded: set[tuple[str, str]] = set()
        self._gauges: dict[str, Gauge] = {}
        self._loud_at = 0.0

    async def admit(self, identity: Identity, *, upstream_model: str, estimate: int) -> Ticket:
        """Check the key's limits for a request of about `estimate` input tokens; raise 429/402 when over."""
        limits = identity.limits
        price = self.prices.price_for(upstream_model)
        if not limits.limited:
            return Ticket(identity, None, price)
        now = datetime.now(UTC)
        period = limits.budget_period
        pid, end = _period(period, now.toordinal())
        ask = Ask(
            key=identity.tenant,
            lease=f"{_LEASE_PREFIX}{next(_LEASES)}",
            rpm=limits.rpm,
            tpm=limits.tpm,
            tokens=estimate,
            concurrency=limits.max_concurrency,
            budget=None if limits.budget_usd is None else round(limits.budget_usd * NANO),
            period=pid,
            period_ttl=int(end - now.timestamp()) + 3600,
            reserve=cost_nano(price, TokenUsage(input_tokens=estimate)),
        )
        try:
            if ask.budget is not None:
                await self._seed(identity, ask, now)
            verdict = await self.counters.admit(ask)
        except CountersUnavailable:
            return self._store_down(identity, price)
        headers = self._headers(ask, verdict, now)
        if verdict.refused is not None:
            LIMITED.labels(identity.label, verdict.refused).inc()
            raise self._refusal(identity, ask, verdict, headers, now)
        return Ticket(identity, ask, price, headers)

    async def settle(self, ticket: Ticket, usage: TokenUsage) -> int:
        """Debit the real usage; returns the cost in nano-dollars (0 without a price).

        Called once the answer is out, but awaited: the client's next request must see this one's usage.
        """
        cost = cost_nano(ticket.price, usage)
        ask = ticket.ask
        if ticket.settled or ask is None:
            return cost
        ticket.settled = True
        settlement = Settlement(
            key=ask.key,
            lease=ask.lease,
            tpm=ask.tpm is not None,
            concurrency=ask.concurrency is not None,
            tokens_delta=usage.total - ask.tokens,
            budget=ask.budget is not None,
            period=ask.period,
            period_ttl=ask.period_ttl,
            reserved=ask.reserve,
            cost=cost,
        )
        try:
            spent = await self.counters.settle(settlement)
        except CountersUnavailable:
            COUNTER_STORE_ERRORS.labels("settle_lost").inc()
            return cost
        if ask.budget:
            self._note_spend(ticket.identity, ask.budget, spent, cost)
        return cost

    async def _seed(self, identity: Identity, ask: Ask, now: datetime) -> None:
        """The period's spend from the ledger, once per key and period in this process (survives restarts)."""
        marker = (ask.key, ask.period)
        if marker in self._seeded or self._spend_source is None:
            return
        spent = await self._spend_source(identity.tenant, period_start(identity.limits.budget_period, now))
        await self.counters.seed_spend(ask.key, ask.period, round(spent * NANO), ask.period_ttl)
        self._seeded.add(marker)

    def _store_down(self, identity: Identity, price: Price | None) -> Ticket:
        outcome = "admitted" if self.fail_open else "refused"
        COUNTER_STORE_ERRORS.labels(outcome).inc()
        if time.monotonic() - self._loud_at > _LOUD_EVERY:
            self._loud_at = time.monotonic()
            logger.error("limit counter store unreachable", extra={"outcome": outcome, "key": identity.label})
        if not self.fail_open:
            raise OverloadedError("Rate-limit store unavailable", headers={"retry-after": "1"})
        return Ticket(identity, None, price)

    @staticmethod
    def _headers(ask: Ask, verdict: Verdict, now: datetime) -> dict[str, str]:
        admitted = verdict.refused is None
        out: dict[str, str] = {}
        epoch = now.timestamp()
        if ask.rpm is not None:
            used = verdict.requests_used + (1 if admitted else 0)
            wait = verdict.retry_after if verdict.refused == "requests" else WINDOW
            out["anthropic-ratelimit-requests-limit"] = str(ask.rpm)
            out["anthropic-ratelimit-requests-remaining"] = str(max(0, ask.rpm - used))
            out["anthropic-ratelimit-requests-reset"] = _rfc3339_at(math.ceil(epoch + wait))
        if ask.tpm is not None:
            used = verdict.tokens_used + (ask.tokens if admitted else 0)
            minute_end = (math.floor(epoch / WINDOW) + 1) * WINDOW
            out["anthropic-ratelimit-tokens-limit"] = str(ask.tpm)
            out["anthropic-ratelimit-tokens-remaining"] = str(max(0, ask.tpm - used))
            out["anthropic-ratelimit-tokens-reset"] = _rfc3339_at(int(minute_end))
        return out

    def _refusal(
        self, identity: Identity, ask: Ask, verdict: Verdict, headers: dict[str, str], now: datetime
    ) -> GatewayError:
        who = f"key {identity.tenant!r}"
        if verdict.refused == "budget":
            limits = identity.limits
            reset = _rfc3339(period_end(limits.budget_period, now))
            budget = f"the {_ADJECTIVE[limits.budget_period]} budget of {_money(limits.budget_usd or 0)}"
            spent = _money(verdict.spent / NANO)
            return BillingError(
                f"Budget exceeded for {who}: {budget} is spent ({spent}); it resets at {reset}",
                headers={"x-should-retry": "false"},
            )
        retry = max(1, math.ceil(verdict.retry_after))
        headers = {**headers, "retry-after": str(retry)}
        if verdict.refused == "requests":
            text = f"Rate limit exceeded for {who}: {ask.rpm} requests per minute"
        elif verdict.refused == "tokens":
            text = f"Rate limit exceeded for {who}: {ask.tpm} tokens per minute (this request: about {ask.tokens})"
            if ask.tpm is not None and ask.tokens > ask.tpm:
                headers["x-should-retry"] = "false"
        else:
            text = f"Rate limit exceeded for {who}: at most {ask.concurrency} concurrent requests"
        return RateLimitError(f"{text}; retry after {retry} s", headers=headers)

    def _note_spend(self, identity: Identity, budget: int, spent: int, cost: int) -> None:
        gauge = self._gauges.get(identity.label)
        if gauge is None:
            gauge = self._gauges[identity.label] = BUDGET_USED.labels(identity.label)
        gauge.set(spent / budget)
        threshold = budget * WARN_RATIO
        if spent >= threshold > spent - cost:
            BUDGET_WARNINGS.labels(identity.label).inc()
            logger.warning(
                "budget 80% used",
                extra={"key": identity.label, "spent_usd": round(spent / NANO, 6), "budget_usd": budget / NANO},
            )
