"""What the gateway says at startup: where its config came from, the backends, models, routes and keys in force,
and what to do when nothing is configured. Pure: ``report`` returns (level, message) lines for the lifespan
to log. Secrets are never part of it (keys by name only)."""

from __future__ import annotations

import logging

from gateway.build import describe
from gateway.config import ENVIRONMENT, GatewayConfig
from serving.config import (
    LiteLLMBackendConfig,
    OpenAIBackendConfig,
    SimulatedBackendConfig,
    VLLMBackendConfig,
)

ENV_VARS = (
    "OPENAI_API_KEY (OPENAI_BASE_URL for another compatible API), ANTHROPIC_API_KEY or POINTSMAN_VLLM_URL"
)
_MAX_LISTED = 20


def describe_source(source: str) -> str:
    if source == ENVIRONMENT:
        return "the environment defaults (no config file)"
    return f"the config file {source}"


def _some(items: list[str]) -> str:
    if not items:
        return "none"
    more = len(items) - _MAX_LISTED
    return ", ".join(items[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _backend(name: str, b: object) -> str:
    if isinstance(b, OpenAIBackendConfig):
        return f"{name} (openai at {b.base_url})"
    if isinstance(b, VLLMBackendConfig):
        return f"{name} (vllm at {', '.join(b.endpoints)})"
    if isinstance(b, LiteLLMBackendConfig):
        return f"{name} (litellm {b.provider})"
    if isinstance(b, SimulatedBackendConfig):
        return f"{name} (simulated{', self-hosted' if b.self_hosted else ''})"
    return name


def report(
    file_cfg: GatewayConfig, in_force: GatewayConfig, policy_version: int, compiled: list[str] | None = None
) -> list[tuple[int, str]]:
    """``file_cfg``: the config the gateway was started with; ``in_force``: the policy now served (the stored
    policy may carry admin changes made since the file was imported); ``compiled``: the modules running compiled
    (``gateway.build``), when known."""
    info, warn = logging.INFO, logging.WARNING
    out = [(info, f"config: {describe_source(file_cfg.source)}; policy version {policy_version} in force")]
    if compiled is not None:
        out.append((info, describe(compiled)))
    out.append((info, "backends: " + _some([_backend(n, b) for n, b in in_force.backends.items()])))
    models = [f"{n} -> {m.backend}" for n, m in in_force.models.items()]
    out.append((info, "models: " + _some(models)))
    routes = [
        f"{r.name} -> {', '.join(t.model for t in r.targets) or 'the requested model'}"
        for r in in_force.routes
    ]
    out.append(
        (info, "routes: " + (_some(routes) if routes else "none (each request goes to the model it names)"))
    )
    out.append((info, "client keys: " + _some([k.name for k in in_force.keys])))
    out.append((info, file_cfg.accounting.ledger.describe(file_cfg.server.data_dir)))
    if not in_force.backends:
        out.append(
            (
                warn,
                f"nothing to serve: no backends are configured. Set {ENV_VARS}, or start with "
                "`pointsman serve --config FILE` (README: Config reference). To see pointsman work without "
                "any key or network: `pointsman demo`",
            )
        )
    elif not in_force.models:
        out.append(
            (warn, "no models are configured: every request gets 404. Add `models` to the config file")
        )
    if not in_force.keys:
        out.append(
            (
                warn,
                "no client keys: every inference request gets 401. Set POINTSMAN_API_KEY, or add "
                "`keys` to the config file",
            )
        )
    if not in_force.admin_key:
        out.append((info, "admin API off: set POINTSMAN_ADMIN_KEY or `admin_key` to enable /admin"))
    return out
