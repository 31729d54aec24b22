"""Prices per upstream model, the cost of a request, and budget periods (calendar, UTC)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from messages_bridge.team.keys import Period

NANO = 1_000_000_000  # counters hold nano-dollars: exact sums, no float drift
WARN_RATIO = 0.8


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens; cache writes are billed as input, reasoning as output."""

    input: float
    output: float
    cached_input: float | None = None

    def cost_nano(self, *, input_tokens: int, cache_read: int, cache_creation: int, output_tokens: int) -> int:
        """The cost in nano-dollars (tokens × dollars per million tokens = micro-dollars)."""
        cached = self.input if self.cached_input is None else self.cached_input
        micro = (input_tokens + cache_creation) * self.input + cache_read * cached + output_tokens * self.output
        return round(micro * 1000)


class PriceTable(Protocol):
    def price_for(self, upstream_model: str) -> Price | None: ...


class StaticPriceTable:
    """Prices from a mapping `{model: {input, cached_input, output}}` (or `{model: {price: {...}}}`, the config's)."""

    def __init__(self, table: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self._prices: dict[str, Price] = {}
        for model, entry in (table or {}).items():
            raw = entry.get("price", entry)
            if not isinstance(raw, Mapping):
                raise ValueError(f"price of {model}: expected an object")
            self._prices[model] = Price(
                input=float(raw["input"]),
                output=float(raw["output"]),
                cached_input=None if raw.get("cached_input") is None else float(raw["cached_input"]),
            )

    def price_for(self, upstream_model: str) -> Price | None:
        return self._prices.get(upstream_model)


class PriceLike(Protocol):
    @property
    def input(self) -> float: ...

    @property
    def output(self) -> float: ...

    @property
    def cached_input(self) -> float | None: ...


class LookupPriceTable:
    """Prices looked up when asked (a routing file's model profiles, which a reload may replace), else `fallback`."""

    def __init__(self, lookup: Callable[[str], PriceLike | None], fallback: PriceTable) -> None:
        self._lookup = lookup
        self._fallback = fallback
        self._converted: dict[str, tuple[PriceLike, Price]] = {}  # per model: the last profile price seen

    def price_for(self, upstream_model: str) -> Price | None:
        found = self._lookup(upstream_model)
        if found is None:
            return self._fallback.price_for(upstream_model)
        last = self._converted.get(upstream_model)
        if last is not None and last[0] is found:  # unchanged since (a reload brings new profile objects)
            return last[1]
        price = Price(input=found.input, output=found.output, cached_input=found.cached_input)
        if len(self._converted) < 1024:  # upstream models come from the routing file: a few
            self._converted[upstream_model] = (found, price)
        return price


def period_start(period: Period, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def period_id(period: Period, now: datetime) -> str:
    return f"{period}:{period_start(period, now):%Y-%m-%d}"
