"""`web_search:` configuration: how Anthropic's web_search tool is served, and the gateway's search backend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from messages_bridge.translate.websearch import WebSearchMode


class BackendConfig(BaseModel):
    """The search backend the gateway runs itself (mode `gateway`, or `upstream` without hosted search)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["searxng"] = "searxng"
    url: str = Field(description="base URL of the backend, e.g. http://127.0.0.1:8888")
    timeout: float = Field(default=10.0, gt=0, description="seconds one backend search may take")
    results: int = Field(default=8, ge=1, le=20, description="results kept per search")


class WebSearchConfig(BaseModel):
    """`web_search: {mode: upstream | gateway | off, backend: {kind: searxng, url: …, timeout: 10}}`.

    `upstream`: the upstream's hosted search where the model has it (its profile says `web_search: true`), else
    the backend when one is configured, else an in-band `unavailable`. `gateway`: always the backend. `off`: every
    search answers `unavailable` in-band (never an HTTP error, which Claude Code would swallow).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["upstream", "gateway", "off"] = "upstream"
    backend: BackendConfig | None = None
    time_budget: float = Field(default=60.0, gt=0, description="seconds a gateway-run search loop may take")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted `mode: off` as the boolean false; it means `off`."""
        return "off" if value is False else value

    def resolve(self, *, hosted: bool) -> WebSearchMode:
        """How a model is served: `hosted` (upstream tool), `gateway` (backend loop) or `off`."""
        if self.mode == "upstream" and hosted:
            return "hosted"
        if self.mode != "off" and self.backend is not None:
            return "gateway"
        return "off"
