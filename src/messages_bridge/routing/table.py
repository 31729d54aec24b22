"""The resolved routing table as text (`messages-bridge config check`): secrets masked, nothing else hidden."""

from __future__ import annotations

from pydantic import SecretStr

from messages_bridge.config import Settings
from messages_bridge.routing.config_file import ConfigFile, RouteConfig
from messages_bridge.routing.router import build_profile


def mask(secret: SecretStr) -> str:
    """`****` and, for a key long enough that it gives nothing away, its last four characters."""
    value = secret.get_secret_value()
    return f"****{value[-4:]}" if len(value) >= 20 else "****"


def _when(route: RouteConfig) -> str:
    when = route.when
    if when is None:
        return ""
    parts = []
    if when.thinking is not None:
        parts.append(f"thinking={str(when.thinking).lower()}")
    if when.min_input_tokens is not None:
        parts.append(f"input_tokens>={when.min_input_tokens}")
    parts.extend(f"header {name}={glob}" for name, glob in (when.header or {}).items())
    return " when " + ", ".join(parts) if parts else ""


def _models(config: ConfigFile) -> set[tuple[str, str]]:
    out = set()
    for route in config.routes:
        for target in route.targets:
            upstream, _, model = target.partition("/")
            out.add((upstream, model))
    return out


def render(config: ConfigFile, settings: Settings) -> str:
    lines = ["upstreams:"]
    for name, up in config.upstreams.items():
        keys = ", ".join(f"[{i}] {mask(k)}" for i, k in enumerate(up.api_keys)) or "none"
        version = f" api-version={up.api_version}" if up.api_version else ""
        auth = "api-key header" if up.kind == "azure" else "bearer"
        lines.append(f"  {name}: {up.kind} {up.base_url}{version} ({auth}; keys: {keys})")
        if up.headers:
            lines.append(f"    headers: {', '.join(sorted(up.headers))}")
    lines.append("routes (first match wins):")
    for i, route in enumerate(config.routes):
        lines.append(f"  {i + 1}. {route.match}{_when(route)} -> {', '.join(route.targets)}")
    if not config.routes:
        lines.append("  (none)")
    lines.append(f"allow_direct: {str(config.allow_direct).lower()}")
    lines.append("target models (profile):")
    for upstream, model in sorted(_models(config)):
        declared = config.models.get(f"{upstream}/{model}") or config.models.get(model)
        profile = build_profile(model, declared, settings, config.upstreams[upstream], config.web_search)
        efforts = ",".join(profile.efforts) if profile.efforts is not None else "passed through"
        reasoning = efforts if profile.reasoning else "no"
        ceiling = profile.max_output_tokens or "none"
        source = "declared" if declared is not None else "defaults"
        lines.append(
            f"  {upstream}/{model}: reasoning={reasoning} sampling={str(profile.sampling).lower()} "
            f"context_window={profile.context_window} max_output_tokens={ceiling} ({source})"
        )
    return "\n".join(lines) + "\n"
