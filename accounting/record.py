"""One request's accounting record: what the ledger stores and the metrics observe."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from wire.traceparent import TraceContext
from wire.usage import Usage

if TYPE_CHECKING:
    from accounting.reservation import Reservation

_ZERO = Decimal(0)

RETENTION_CAPPED = "retention_capped"
"""``error_type`` of a stream relayed whole but kept only up to ``server.max_retained_stream_bytes``: token
estimates (when the upstream sent no usage), shadow comparison and capture saw only its beginning."""


class ContentSource:
    """What the request path hands the exporters when content may be exported (``accounting.capture.content``):
    references to the parsed request body, and the parsed answer or a stream's events it already holds."""

    __slots__ = ("request", "response", "events")

    request: Final[dict[str, Any]]
    response: Final[dict[str, Any] | None]
    events: Final[Sequence[bytes] | None]

    def __init__(
        self,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        events: Sequence[bytes] | None,
    ) -> None:
        self.request = request
        self.response = response
        self.events = events


class RequestRecord:
    """One request as accounting keeps it: who asked for what, what served it, what it cost and how it ended."""

    __slots__ = (
        "request_id",
        "ts",
        "key",
        "team",
        "task",
        "route",
        "requested_model",
        "endpoint",
        "stream",
        "upstream_model",
        "backend",
        "served_model",
        "self_hosted",
        "status",
        "outcome",
        "error_type",
        "usage",
        "has_usage",
        "cost_usd",
        "priced",
        "context_threshold",
        "latency_s",
        "ttft_s",
        "overhead_s",
        "fallbacks",
        "failed_attempts",
        "shadow",
        "tags",
        "trace",
        "content",
        "reservation",
        "priced_usage",
    )

    request_id: str
    ts: float
    """Unix time the request arrived."""
    key: str
    team: str | None
    task: str | None
    route: str
    requested_model: str
    endpoint: str
    """``chat/completions``, ``completions``, ``embeddings`` or ``responses``."""
    stream: bool
    upstream_model: str
    backend: str
    served_model: str
    """The configured name of the model that served (the rule's target or fallback, or the one asked for); its price
    is looked up under it. Empty until routed (and for a name a glob let through, the name asked for)."""
    self_hosted: bool
    status: int
    outcome: str
    """One of ``accounting.metrics.OUTCOMES``: ok, client_error, upstream_error, upstream_rate_limited,
    truncated, timeout, rate_limited, budget_exceeded, cancelled."""
    error_type: str | None
    usage: Usage
    has_usage: bool
    cost_usd: Decimal
    priced: bool
    """False when the served model has no price (cost recorded as 0, flagged in the ledger)."""
    context_threshold: int
    """The long-context price threshold (prompt tokens) the request crossed; 0: none."""
    latency_s: float
    ttft_s: float | None
    overhead_s: float
    """Time spent in pointsman itself (total minus time waiting on the upstream)."""
    fallbacks: int
    failed_attempts: list[tuple[str, str]]
    """(backend, error_type) of each upstream attempt that failed before the one that served (or last failed)."""
    shadow: bool
    """True for the shadow (candidate) side of a shadow test."""
    tags: dict[str, str]
    trace: TraceContext | None
    """The request's trace (its span and the spans of its upstream calls), when traced."""
    content: ContentSource | None
    """Set only when traces or analytics events carry content and the team is approved for data capture."""
    reservation: Reservation | None
    """What admission held against the request's budgets; released when its cost is added
    (``accounting.reservation``)."""
    priced_usage: Usage | None
    """The usage ``cost_usd`` was computed from (``Accountant.price``: a request priced for its response headers
    is not priced again when it is recorded, unless its usage changed)."""

    def __init__(
        self,
        request_id: str,
        ts: float,
        key: str,
        team: str | None,
        task: str | None,
        route: str,
        requested_model: str,
        endpoint: str,
        stream: bool,
        upstream_model: str = "",
        backend: str = "",
        served_model: str = "",
        self_hosted: bool = False,
        status: int = 0,
        outcome: str = "ok",
        error_type: str | None = None,
        usage: Usage | None = None,
        has_usage: bool = False,
        cost_usd: Decimal = _ZERO,
        priced: bool = True,
        context_threshold: int = 0,
        latency_s: float = 0.0,
        ttft_s: float | None = None,
        overhead_s: float = 0.0,
        fallbacks: int = 0,
        failed_attempts: list[tuple[str, str]] | None = None,
        shadow: bool = False,
        tags: dict[str, str] | None = None,
        trace: TraceContext | None = None,
        content: ContentSource | None = None,
        reservation: Reservation | None = None,
        priced_usage: Usage | None = None,
    ) -> None:
        self.request_id = request_id
        self.ts = ts
        self.key = key
        self.team = team
        self.task = task
        self.route = route
        self.requested_model = requested_model
        self.endpoint = endpoint
        self.stream = stream
        self.upstream_model = upstream_model
        self.backend = backend
        self.served_model = served_model
        self.self_hosted = self_hosted
        self.status = status
        self.outcome = outcome
        self.error_type = error_type
        self.usage = Usage() if usage is None else usage
        self.has_usage = has_usage
        self.cost_usd = cost_usd
        self.priced = priced
        self.context_threshold = context_threshold
        self.latency_s = latency_s
        self.ttft_s = ttft_s
        self.overhead_s = overhead_s
        self.fallbacks = fallbacks
        self.failed_attempts = [] if failed_attempts is None else failed_attempts
        self.shadow = shadow
        self.tags = {} if tags is None else tags
        self.trace = trace
        self.content = content
        self.reservation = reservation
        self.priced_usage = priced_usage
