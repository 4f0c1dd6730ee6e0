"""What accounting needs to know about the deployment, as plain data the gateway hands in.

Accounting may not import the gateway, routing or serving layers; the gateway builds a ``Catalog`` from its
config (``gateway.accounting_setup``) and gives it to the ``Accountant`` (again on every config swap).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final, Protocol


class BackendFacts:
    """What accounting knows of one configured backend: its type, and what prices its self-hosted GPU time."""

    __slots__ = (
        "name",
        "type",
        "self_hosted",
        "provider",
        "gpu_hour_usd",
        "gpu_count",
        "endpoints",
        "throughput_window_s",
        "throughput_min_tokens",
    )

    name: Final[str]
    type: Final[str]
    """``openai``, ``vllm`` or ``litellm``."""
    self_hosted: Final[bool]
    provider: Final[str | None]
    """litellm provider prefix (``anthropic``), for price-table lookups."""
    gpu_hour_usd: Final[Decimal | None]
    gpu_count: Final[int]
    endpoints: Final[tuple[str, ...]]
    throughput_window_s: Final[float]
    """Self-hosted: trailing window over which the fleet's throughput is measured (for GPU-hour pricing)."""
    throughput_min_tokens: Final[int]
    """Self-hosted: tokens a window must hold before its measured price replaces the previous one."""

    def __init__(
        self,
        name: str,
        type: str,
        self_hosted: bool,
        provider: str | None = None,
        gpu_hour_usd: Decimal | None = None,
        gpu_count: int = 1,
        endpoints: tuple[str, ...] = (),
        throughput_window_s: float = 300.0,
        throughput_min_tokens: int = 1000,
    ) -> None:
        self.name = name
        self.type = type
        self.self_hosted = self_hosted
        self.provider = provider
        self.gpu_hour_usd = gpu_hour_usd
        self.gpu_count = gpu_count
        self.endpoints = endpoints
        self.throughput_window_s = throughput_window_s
        self.throughput_min_tokens = throughput_min_tokens


class ModelFacts:
    """One configured model: the backend serving it and the upstream id it is sent as."""

    __slots__ = ("name", "backend", "upstream_model")

    name: Final[str]
    """The configured model name (exact or a glob)."""
    backend: Final[str]
    upstream_model: Final[str | None]
    """None for globs without an explicit upstream id (the requested name is sent)."""

    def __init__(
        self,
        name: str,
        backend: str,
        upstream_model: str | None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.upstream_model = upstream_model


class Catalog:
    """The deployment as accounting sees it: backends, models and the names the config defines."""

    __slots__ = (
        "backends",
        "models",
        "teams",
        "keys",
        "tasks",
        "routes",
        "redis_url",
        "on_unavailable",
        "workers",
    )

    backends: Final[dict[str, BackendFacts]]
    models: Final[dict[str, ModelFacts]]
    teams: Final[frozenset[str]]
    """Teams of configured keys."""
    keys: Final[frozenset[str]]
    """Names of configured keys."""
    tasks: Final[frozenset[str]]
    """Task values named by the config (routes, key defaults) that stay metric labels."""
    routes: Final[frozenset[str]]
    redis_url: Final[str | None]
    on_unavailable: Final[str]
    workers: Final[int]

    def __init__(
        self,
        backends: dict[str, BackendFacts] | None = None,
        models: dict[str, ModelFacts] | None = None,
        teams: frozenset[str] = frozenset(),
        keys: frozenset[str] = frozenset(),
        tasks: frozenset[str] = frozenset(),
        routes: frozenset[str] = frozenset(),
        redis_url: str | None = None,
        on_unavailable: str = "fail_open",
        workers: int = 1,
    ) -> None:
        self.backends = {} if backends is None else backends
        self.models = {} if models is None else models
        self.teams = teams
        self.keys = keys
        self.tasks = tasks
        self.routes = routes
        self.redis_url = redis_url
        self.on_unavailable = on_unavailable
        self.workers = workers


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
