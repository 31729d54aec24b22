"""Requested model (+ request facts) → the ordered targets that may serve it.

Two routers behind one interface: `FileRouter` (the routing file) and `EnvRouter` (no file: today's single
upstream from the environment, unknown names to the default model, no breaker, no benching).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from messages_bridge.config import DEFAULT_BASE_URL, Settings
from messages_bridge.errors import NotFoundError
from messages_bridge.routing.breaker import Breaker
from messages_bridge.routing.config_file import ConfigFile, ModelProfile, RouteConfig, UpstreamConfig, split_target
from messages_bridge.routing.keypool import KeyPool
from messages_bridge.translate.request import EFFORT_ORDER, UpstreamProfile
from messages_bridge.upstream.client import ResponsesClient, Timeouts
from messages_bridge.upstream.retry import RetryPolicy
from messages_bridge.websearch.config import WebSearchConfig

DEFAULT_UPSTREAM = "default"
_CACHE_LIMIT = 4096
_CACHED_NAME_CHARS = 256  # longer requested names are resolved each time, never kept


@dataclass(eq=False, slots=True, weakref_slot=True)
class UpstreamRuntime:
    """One upstream at run time: a client per key (all sharing one transport), its key pool and breaker."""

    name: str
    clients: tuple[ResponsesClient, ...]
    keys: KeyPool
    breaker: Breaker | None
    transport: httpx.AsyncBaseTransport
    bench_seconds: float = 600.0
    benching: bool = True
    config: UpstreamConfig | None = None


@dataclass(frozen=True, slots=True)
class Target:
    upstream: UpstreamRuntime
    model: str
    profile: UpstreamProfile
    position: int

    @property
    def name(self) -> str:
        return f"{self.upstream.name}/{self.model}"


@dataclass(slots=True)
class RequestFacts:
    """What route conditions may look at; the token estimate is computed only when a condition asks."""

    thinking: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    estimate: Callable[[], int] = lambda: 0
    _tokens: int | None = None

    @property
    def input_tokens(self) -> int:
        if self._tokens is None:
            self._tokens = self.estimate()
        return self._tokens


class EnvRouter:
    """No routing file: the one upstream of `OPENAI_*`, names mapped by the `BRIDGE_*` model settings."""

    legacy = True

    def __init__(self, settings: Settings, client: ResponsesClient) -> None:
        self._settings = settings
        self.upstream = UpstreamRuntime(
            DEFAULT_UPSTREAM, (client,), KeyPool(DEFAULT_UPSTREAM, 1), None, client.transport, benching=False
        )
        self.upstreams = {DEFAULT_UPSTREAM: self.upstream}
        self.conditional = False
        self.web_search: WebSearchConfig = settings.web_search
        self._targets: dict[str, tuple[Target, ...]] = {}  # requested name → its one target (names: client strings)

    def resolve(self, model: str, facts: RequestFacts) -> tuple[Target, ...]:
        targets = self._targets.get(model)
        if targets is None:
            profile = self._settings.profile(model)
            targets = (Target(self.upstream, profile.model, profile, 0),)
            if len(self._targets) < _CACHE_LIMIT and len(model) <= _CACHED_NAME_CHARS:
                self._targets[model] = targets
        return targets

    def accepts(self, model: str) -> bool:
        return model in self._settings.listed_models or model in self._settings.model_map

    def listed(self) -> list[tuple[str, str]]:
        return [(m, m) for m in self._settings.listed_models]


def _compile(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob))


def _header_matches(when: dict[str, str], headers: Mapping[str, str]) -> bool:
    for name, glob in when.items():
        value = headers.get(name.lower())
        if value is None or not fnmatch.fnmatchcase(value, glob):
            return False
    return True


def _conditions_hold(route: RouteConfig, facts: RequestFacts) -> bool:
    when = route.when
    if when is None:
        return True
    if when.thinking is not None and when.thinking != facts.thinking:
        return False
    if when.min_input_tokens is not None and facts.input_tokens < when.min_input_tokens:
        return False
    return when.header is None or _header_matches(when.header, facts.headers)


class FileRouter:
    """Routes of the file, first match wins; `upstream/model` names go straight there when `allow_direct`."""

    legacy = False

    def __init__(self, config: ConfigFile, settings: Settings, upstreams: dict[str, UpstreamRuntime]) -> None:
        self.config = config
        self._settings = settings
        self.upstreams = upstreams
        self.web_search: WebSearchConfig = config.web_search or settings.web_search
        self._patterns = [_compile(route.match) for route in config.routes]
        self._matches: dict[str, tuple[int, ...]] = {}
        self._profiles: dict[tuple[str, str], UpstreamProfile] = {}
        self.route_targets = [self._targets(route.targets) for route in config.routes]
        self.conditional = any(route.when is not None for route in config.routes)

    def _targets(self, names: tuple[str, ...]) -> tuple[Target, ...]:
        out = []
        for position, name in enumerate(names):
            upstream, model = split_target(name)
            out.append(Target(self.upstreams[upstream], model, self.profile(upstream, model), position))
        return tuple(out)

    def profile(self, upstream: str, model: str) -> UpstreamProfile:
        """The model's capability profile (`upstream/model` entry, else `model`, else the prefix settings)."""
        key = (upstream, model)
        profile = self._profiles.get(key)
        if profile is None:
            declared = self.config.models.get(f"{upstream}/{model}") or self.config.models.get(model)
            upstream_config = self.config.upstreams[upstream]
            profile = build_profile(model, declared, self._settings, upstream_config, self.web_search)
            if len(self._profiles) < _CACHE_LIMIT:
                self._profiles[key] = profile
        return profile

    def _candidates(self, model: str) -> tuple[int, ...]:
        """Indexes of the routes whose glob matches the name (cached: the globs do not change)."""
        hit = self._matches.get(model)
        if hit is None:
            hit = tuple(i for i, pattern in enumerate(self._patterns) if pattern.match(model))
            if len(self._matches) < _CACHE_LIMIT:
                self._matches[model] = hit
        return hit

    def _direct(self, model: str) -> tuple[Target, ...] | None:
        if not self.config.allow_direct:
            return None
        upstream, sep, name = model.partition("/")
        if not sep or not name or upstream not in self.upstreams:
            return None
        return (Target(self.upstreams[upstream], name, self.profile(upstream, name), 0),)

    def resolve(self, model: str, facts: RequestFacts) -> tuple[Target, ...]:
        if (direct := self._direct(model)) is not None:
            return direct
        routes = self.config.routes
        for i in self._candidates(model):
            if _conditions_hold(routes[i], facts):
                return self.route_targets[i]
        raise NotFoundError(f"model: {model}")

    def accepts(self, model: str) -> bool:
        """Whether some route (under some conditions) or a direct name takes this model."""
        return self._direct(model) is not None or bool(self._candidates(model))

    def listed(self) -> list[tuple[str, str]]:
        """Concrete route names, then direct names: (id, display name saying where they go)."""
        out: dict[str, str] = {}
        for route in self.config.routes:
            if route.concrete and route.match not in out:
                out[route.match] = f"{route.match} → {', '.join(route.targets)}"
        if self.config.allow_direct:
            for route in self.config.routes:
                for target in route.targets:
                    out.setdefault(target, f"{target} (direct)")
        return list(out.items())


def hosted_search(upstream: UpstreamConfig | None, settings: Settings) -> bool:
    """Whether an upstream has hosted web search when the profile does not say: OpenAI's own API has it
    (`BRIDGE_WEB_SEARCH_HOSTED` overrides, as without a routing file)."""
    if settings.web_search_hosted is not None:
        return settings.web_search_hosted
    return upstream is not None and upstream.kind == "responses" and upstream.base_url == DEFAULT_BASE_URL


def build_profile(
    model: str,
    declared: ModelProfile | None,
    settings: Settings,
    upstream: UpstreamConfig | None = None,
    web_search_config: WebSearchConfig | None = None,
) -> UpstreamProfile:
    """A declared profile over the defaults (the prefix settings decide what the file leaves unset)."""
    reasoning = model.startswith(settings.reasoning_models)
    sampling = model.startswith(settings.sampling_models)
    hosted = hosted_search(upstream, settings)
    if declared is not None and declared.web_search is not None:
        hosted = declared.web_search
    web_search = (web_search_config or settings.web_search).resolve(hosted=hosted)
    if declared is None:
        return UpstreamProfile(
            model=model,
            reasoning=reasoning,
            sampling=sampling,
            disabled_effort=settings.disabled_thinking_effort,
            context_window=settings.context_window,
            web_search=web_search,
        )
    efforts = None
    if declared.reasoning_efforts is not None:
        efforts = tuple(sorted(set(declared.reasoning_efforts), key=EFFORT_ORDER.index))
        reasoning = bool(efforts)
    return UpstreamProfile(
        model=model,
        reasoning=reasoning,
        sampling=sampling if declared.sampling is None else declared.sampling,
        disabled_effort=settings.disabled_thinking_effort,
        efforts=efforts,
        max_output_tokens=declared.max_output_tokens,
        context_window=declared.context_window or settings.context_window,
        web_search=web_search,
    )


def build_upstream(
    name: str, config: UpstreamConfig, transport: httpx.AsyncBaseTransport, retry: RetryPolicy, settings: Settings
) -> UpstreamRuntime:
    """Clients for each key (keyless: one client without credentials) over one shared transport."""
    timeouts = Timeouts(
        connect=config.timeouts.connect or settings.connect_timeout, read=config.timeouts.read or settings.read_timeout
    )
    azure = config.kind == "azure"
    query = str(httpx.QueryParams({"api-version": config.api_version})) if config.api_version else ""
    keys: list[str | None] = [k.get_secret_value() for k in config.api_keys] or [None]
    clients = tuple(
        ResponsesClient(
            transport,
            base_url=config.base_url,
            api_key=key,
            timeouts=timeouts,
            retry=retry,
            key_header="api-key" if azure else "authorization",
            query=f"?{query}" if query else "",
            headers=config.headers,
            max_body_bytes=settings.max_upstream_body_bytes,
        )
        for key in keys
    )
    breaker = Breaker(failures=config.breaker.failures, cooldown=config.breaker.cooldown)
    pool = KeyPool(name, len(clients))
    return UpstreamRuntime(
        name, clients, pool, breaker, transport, bench_seconds=config.key_bench_seconds, config=config
    )


Router = EnvRouter | FileRouter
