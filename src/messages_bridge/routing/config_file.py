"""The routing file (YAML): its schema, `${VAR}` substitution and loading. Field names are a public contract.

Loading never logs a secret: an invalid file is reported by field path and reason only, and a literal secret
in the file is reported by where it is, not by what it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from messages_bridge.websearch.config import WebSearchConfig

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_GLOB_CHARS = frozenset("*?[")


class ConfigError(Exception):
    """The file cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamTimeouts(_Strict):
    """Seconds; unset = BRIDGE_CONNECT_TIMEOUT / BRIDGE_READ_TIMEOUT."""

    connect: float | None = Field(default=None, gt=0)
    read: float | None = Field(default=None, gt=0)


class BreakerConfig(_Strict):
    """Consecutive failures that open the circuit, and how long it stays open before one probe."""

    failures: int = Field(default=5, ge=1)
    cooldown: float = Field(default=30.0, gt=0)


class UpstreamConfig(_Strict):
    kind: Literal["responses", "azure"] = "responses"
    base_url: str
    api_keys: tuple[SecretStr, ...] = ()
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: UpstreamTimeouts = Field(default_factory=UpstreamTimeouts)
    max_connections: int | None = Field(default=None, ge=1, description="unset = BRIDGE_MAX_CONNECTIONS")
    api_version: str | None = None
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    key_bench_seconds: float = Field(default=600.0, gt=0, description="how long a rejected or out-of-quota key rests")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(not k.get_secret_value() for k in value):
            raise ValueError("an API key is empty")
        return value


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float = Field(ge=0)


class ModelProfile(_Strict):
    """What one upstream model accepts; an unset field takes the documented default (the prefix settings)."""

    reasoning_efforts: tuple[Effort, ...] | None = None
    sampling: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, ge=16)
    price: Price | None = None
    web_search: bool | None = None  # hosted web search; unset: OpenAI's own API has it, other upstreams do not


class When(_Strict):
    thinking: bool | None = None
    min_input_tokens: int | None = Field(default=None, ge=0)
    header: dict[str, str] | None = None


class RouteConfig(_Strict):
    match: str = Field(min_length=1)
    when: When | None = None
    targets: tuple[str, ...] = Field(min_length=1)

    @property
    def concrete(self) -> bool:
        """A plain name (no glob characters): listed by `/v1/models`."""
        return not _GLOB_CHARS & set(self.match)


class ConfigFile(_Strict):
    upstreams: dict[str, UpstreamConfig] = Field(min_length=1)
    models: dict[str, ModelProfile] = Field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    allow_direct: bool = False
    web_search: WebSearchConfig | None = None  # unset: the BRIDGE_WEB_SEARCH_* settings decide

    @field_validator("upstreams")
    @classmethod
    def _names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"upstream name {name!r} may only hold letters, digits, '_', '.' and '-'")
        return value

    @model_validator(mode="after")
    def _targets_exist(self) -> ConfigFile:
        for i, route in enumerate(self.routes):
            for j, target in enumerate(route.targets):
                upstream, sep, model = target.partition("/")
                where = f"routes.{i}.targets.{j}"
                if not sep or not model:
                    raise ValueError(f"{where}: {target!r} is not `upstream/model`")
                if upstream not in self.upstreams:
                    raise ValueError(f"{where}: unknown upstream {upstream!r}")
        if not self.routes and not self.allow_direct:
            raise ValueError("routes: no routes and allow_direct is false, so no model could be served")
        return self


def split_target(target: str) -> tuple[str, str]:
    upstream, _, model = target.partition("/")
    return upstream, model


def _substitute(text: str, where: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name, default)
        if value is None:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return value

    return _VAR.sub(replace, text)


class _Resolver:
    """`${VAR}` substituted in every string; collects warnings (literal secrets, keys whose variable is unset)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.warnings: list[str] = []

    def resolve(self, node: Any, where: str = "") -> Any:
        if isinstance(node, dict):
            return {k: self._value(v, f"{where}.{k}".lstrip(".")) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v, f"{where}.{i}") for i, v in enumerate(node)]
        if isinstance(node, str):
            if _is_secret_path(where) and not _VAR.search(node):
                self.warnings.append(f"{where} is a literal secret in the file; prefer ${{VARIABLE}}")
            return _substitute(node, where, self.env)
        return node

    def _value(self, node: Any, where: str) -> Any:
        if where.endswith(".api_keys") and isinstance(node, list):
            return self._keys(node, where)
        return self.resolve(node, where)

    def _keys(self, keys: list[Any], where: str) -> list[Any]:
        """A key whose variable is unset is left out (a pool may list optional keys), with a warning."""
        out = []
        for i, key in enumerate(keys):
            try:
                out.append(self.resolve(key, f"{where}.{i}"))
            except ConfigError as exc:
                self.warnings.append(f"{exc}: that key is left out")
        if keys and not out:
            self.warnings.append(f"{where}: no key is set, requests to this upstream go without credentials")
        return out


def _is_secret_path(where: str) -> bool:
    parts = where.split(".")
    if len(parts) >= 3 and parts[0] == "upstreams" and parts[2] == "api_keys":
        return True
    return len(parts) == 4 and parts[2] == "headers" and parts[3].lower() in {"authorization", "api-key", "x-api-key"}


def _field_path(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def describe_validation(exc: ValidationError) -> str:
    """One line per problem, each naming the field (never echoing its value: it may be a secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        path = _field_path(error)
        lines.append(message if message.startswith("routes.") else f"{path}: {message}")
    return "; ".join(lines)


def parse_config(text: str, *, source: str, env: Mapping[str, str] | None = None) -> tuple[ConfigFile, list[str]]:
    """The validated file and its warnings; raises `ConfigError` naming the field."""
    import yaml  # here, not at the top: without a routing file the server never loads the YAML parser

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{at}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the file must be a mapping with an `upstreams` key")
    resolver = _Resolver(os.environ if env is None else env)
    try:
        resolved = resolver.resolve(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        config = ConfigFile.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation(exc)}") from None
    return config, [f"{source}: {warning}" for warning in resolver.warnings]


def load_config(path: str, env: Mapping[str, str] | None = None) -> tuple[ConfigFile, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    return parse_config(text, source=path, env=env)
