"""Settings: read once at start-up from the environment (and CLI flags), then frozen."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from messages_bridge.translate.request import UpstreamProfile
from messages_bridge.websearch.config import WebSearchConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEMO_BASE_URL = "http://demo-upstream/v1"
DEFAULT_MODEL_MAP: dict[str, str] = {"opus": "gpt-5", "sonnet": "gpt-5", "haiku": "gpt-5-mini"}
# Model ids listed by GET /v1/models (Claude Code's picker keeps ids starting with "claude").
LISTED_MODELS = (
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-sonnet-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001",
)
FAMILIES = ("opus", "sonnet", "haiku")

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


class Settings(BaseSettings):
    """Every setting; `OPENAI_*` follow the OpenAI SDK's names, the rest use the `BRIDGE_` prefix."""

    _profiles: dict[str, UpstreamProfile] = PrivateAttr(default_factory=dict)
    model_config = SettingsConfigDict(env_prefix="BRIDGE_", frozen=True, extra="ignore", populate_by_name=True)

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    config: str | None = Field(default=None, description="routing file (YAML): upstreams, model profiles, routes")
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8080, ge=0, le=65535, description="port")
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes")
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="comma-separated client keys (environment only)"
    )
    allow_unauthenticated: bool = Field(default=False, description="allow a non-loopback bind without api keys")
    model_map: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MODEL_MAP),
        description="Anthropic model name or family -> upstream model, JSON or name=model,...",
    )
    default_model: str = Field(default="gpt-5", description="upstream model for names the map does not match")
    reasoning_models: CommaList = Field(
        default=("o1", "o3", "o4", "gpt-5"), description="upstream model prefixes that take `reasoning`"
    )
    sampling_models: CommaList = Field(
        default=("gpt-4",), description="upstream model prefixes that accept temperature/top_p"
    )
    disabled_thinking_effort: str | None = Field(
        default="minimal", description="reasoning effort when the client asks for no thinking"
    )
    context_window: int = Field(default=400_000, description="maximum quoted in 'prompt is too long' errors")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="request body limit (413 above)")
    connect_timeout: float = Field(default=10.0, gt=0, description="upstream connect timeout, seconds")
    read_timeout: float = Field(default=600.0, gt=0, description="upstream silence limit between bytes, seconds")
    max_connections: int = Field(default=1024, ge=1, description="upstream connection pool size")
    upstream_keepalive: float = Field(
        default=4.0, gt=0, description="seconds an idle upstream connection is kept; keep below the upstream's own"
    )
    max_upstream_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest upstream JSON body held (decoded); 502 api_error above"
    )
    max_upstream_event_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest upstream stream event held (decoded); api_error above"
    )
    # Client connections (enforced by the HTTP protocol, before a request reaches the app): see serving/.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, description="request head size limit (431 above)")
    max_headers: int = Field(default=128, ge=8, description="request header count limit (431 above)")
    header_timeout: float = Field(default=10.0, gt=0, description="seconds to receive a request head (408 after)")
    body_timeout: float = Field(
        default=30.0, gt=0, description="seconds a request body may stall, plus its min-rate allowance (408 after)"
    )
    min_body_rate: int = Field(default=1024, ge=1, description="bytes per second a request body must average")
    max_client_connections: int = Field(
        default=4096, ge=1, description="open client connections per worker; beyond it 503 and close"
    )
    ping_interval: float = Field(default=10.0, gt=0, description="seconds of upstream silence before a stream ping")
    # Reliability: upstream retries before the first byte, admission control, graceful shutdown.
    max_retries: int = Field(default=2, ge=0, le=10, description="upstream retries before the first byte")
    max_retry_wait: float = Field(default=2.0, ge=0, description="longest upstream retry-after waited out, seconds")
    retry_budget: float = Field(default=10.0, gt=0, description="time a request may spend on retries, seconds")
    max_concurrency: int = Field(default=1024, ge=1, description="requests in flight before 529 overloaded_error")
    shutdown_grace: float = Field(default=30.0, ge=0, description="seconds open streams may finish on SIGTERM")
    reject_sampling_on_new_api: bool = Field(
        default=True, description="400 for temperature/top_p/top_k with anthropic-version 2026-10-21"
    )
    # Message threads (beta message-threads-2026-08-12): see README "Message threads".
    threads: bool = Field(default=True, description="hold message threads; off answers 400 thread_unsupported_request")
    redis_url: str | None = Field(default=None, description="Redis shared by workers and replicas (environment only)")
    threads_key: SecretStr | None = Field(
        default=None, description="comma-separated base64 32-byte keys encrypting threads in Redis (environment only)"
    )
    threads_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024, description="bytes of threads held in memory")
    threads_max_thread_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="bytes one thread may hold (larger ones are not kept)"
    )
    threads_idle_seconds: float = Field(
        default=300.0, gt=0, le=1800, description="a thread expires this long after its last stored reply"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log level")
    log_format: Literal["json", "console"] = Field(default="json", description="log format")
    log_content: bool = Field(default=False, description="log request/response bodies (secrets masked)")
    # Web search (Anthropic's web_search server tool). A routing file's `web_search:` key overrides these.
    web_search_mode: Literal["upstream", "gateway", "off"] = Field(
        default="upstream", description="web_search through the upstream's hosted search, a gateway backend, or off"
    )
    web_search_backend_url: str | None = Field(default=None, description="SearXNG base URL for gateway-run search")
    web_search_timeout: float = Field(default=10.0, gt=0, description="seconds one backend search may take")
    web_search_hosted: bool | None = Field(
        default=None, description="whether the upstream has hosted web_search (default: api.openai.com and demo)"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        return _split(value)

    @field_validator("reasoning_models", "sampling_models", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("model_map", mode="before")
    @classmethod
    def _parse_map(cls, value: object) -> object:
        """JSON object, or `name=model,name=model`; merged over the defaults."""
        if isinstance(value, str):
            text = value.strip()
            pairs = (pair.split("=", 1) for pair in text.split(",") if "=" in pair)
            parsed = json.loads(text) if text.startswith("{") else dict(pairs)
            return {**DEFAULT_MODEL_MAP, **{k.strip(): v.strip() for k, v in parsed.items()}}
        return value

    @property
    def demo(self) -> bool:
        """No routing file, no key and no base URL: serve from the built-in simulator."""
        return self.config is None and self.openai_api_key is None and self.openai_base_url is None

    @property
    def upstream_base_url(self) -> str:
        if self.demo:
            return DEMO_BASE_URL
        return (self.openai_base_url or DEFAULT_BASE_URL).rstrip("/")

    def upstream_model(self, requested: str) -> str:
        """Exact names first, then the family (opus/sonnet/haiku) in the name, then the default."""
        if (exact := self.model_map.get(requested)) is not None:
            return exact
        lowered = requested.lower()
        for family in FAMILIES:
            if family in lowered and family in self.model_map:
                return self.model_map[family]
        return self.default_model

    @cached_property
    def web_search(self) -> WebSearchConfig:
        """The web search configuration (from the `BRIDGE_WEB_SEARCH_*` settings for now)."""
        backend = None
        if self.web_search_backend_url:
            backend = {"kind": "searxng", "url": self.web_search_backend_url, "timeout": self.web_search_timeout}
        return WebSearchConfig.model_validate({"mode": self.web_search_mode, "backend": backend})

    def hosted_search(self, model: str) -> bool:
        """Whether the upstream model has hosted web search: the one switch a routing profile will set per model."""
        if self.web_search_hosted is not None:
            return self.web_search_hosted
        return self.demo or self.upstream_base_url == DEFAULT_BASE_URL

    def profile(self, requested: str) -> UpstreamProfile:
        """The upstream model and what it accepts; built once per upstream model (a set the settings bound)."""
        model = self.upstream_model(requested)
        profile = self._profiles.get(model)
        if profile is None:
            profile = self._profiles[model] = UpstreamProfile(
                model=model,
                reasoning=model.startswith(self.reasoning_models),
                sampling=model.startswith(self.sampling_models),
                disabled_effort=self.disabled_thinking_effort,
                context_window=self.context_window,
                web_search=self.web_search.resolve(hosted=self.hosted_search(model)),
            )
        return profile

    @cached_property
    def listed_models(self) -> tuple[str, ...]:
        extra = [m for m in self.model_map if m.startswith("claude") and m not in LISTED_MODELS]
        return (*LISTED_MODELS, *extra)
