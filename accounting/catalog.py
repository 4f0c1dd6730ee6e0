"""What accounting needs to know about the deployment, as plain data the gateway hands in.

Accounting may not import the gateway, routing or serving layers; the gateway builds a ``Catalog`` from its
config (``gateway.accounting_setup``) and gives it to the ``Accountant`` (again on every config swap).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class BackendFacts:
    name: str
    type: str
    """``openai``, ``vllm`` or ``litellm``."""
    self_hosted: bool
    provider: str | None = None
    """litellm provider prefix (``anthropic``), for price-table lookups."""
    gpu_hour_usd: Decimal | None = None
    gpu_count: int = 1
    endpoints: tuple[str, ...] = ()
    throughput_window_s: float = 300.0
    """Self-hosted: trailing window over which the fleet's throughput is measured (for GPU-hour pricing)."""
    throughput_min_tokens: int = 1000
    """Self-hosted: tokens a window must hold before its measured price replaces the previous one."""


@dataclass(frozen=True, slots=True)
class ModelFacts:
    name: str
    """The configured model name (exact or a glob)."""
    backend: str
    upstream_model: str | None
    """None for globs without an explicit upstream id (the requested name is sent)."""


@dataclass(frozen=True, slots=True)
class Catalog:
    backends: dict[str, BackendFacts] = field(default_factory=dict)
    models: dict[str, ModelFacts] = field(default_factory=dict)
    teams: frozenset[str] = frozenset()
    """Teams of configured keys."""
    keys: frozenset[str] = frozenset()
    """Names of configured keys."""
    tasks: frozenset[str] = frozenset()
    """Task values named by the config (routes, key defaults) that stay metric labels."""
    routes: frozenset[str] = frozenset()
    redis_url: str | None = None
    on_unavailable: str = "fail_open"
    workers: int = 1


TokenCounter = Callable[[str, str, dict[str, Any]], Awaitable[int | None]]
"""``(backend, upstream_model, payload) -> token count``: the vLLM server's own ``/tokenize``. The payload
is ``{"messages": [...]}`` or ``{"prompt": "..."}``. None when the count could not be had."""


class ServedModel(Protocol):
    """A model a request may be served by (``routing.models.ResolvedModel``: a decision's target or fallback)."""

    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def upstream_model(self) -> str: ...
