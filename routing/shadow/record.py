"""One pair record per sampled request, keyed by the request id.

Sides are named by role, whatever served the client: ``primary`` is the baseline (the route's own target, the
frontier model) and ``candidate`` the model under test. ``direction`` says which one served the client:
``forward`` (the baseline served, the candidate was the shadow) or ``reverse`` (during and after a promotion,
the candidate served and the baseline was the shadow).

Outcomes: ``paired`` (both answered), ``candidate_failed`` (counts against the candidate), ``primary_failed``
(the baseline failed or was replaced by a fallback; excluded from quality statistics), ``dropped`` (the shadow
was never sent: queue full, concurrency, budget; ``reason`` says which).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

PAIRED = "paired"
CANDIDATE_FAILED = "candidate_failed"
PRIMARY_FAILED = "primary_failed"
DROPPED = "dropped"
OUTCOMES = (PAIRED, CANDIDATE_FAILED, PRIMARY_FAILED, DROPPED)


_SIDE_FIELDS: Final = (
    "model",
    "backend",
    "upstream_model",
    "status",
    "ok",
    "error",
    "latency_s",
    "ttft_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "priced",
    "fallbacks",
)
"""``Side``'s attributes, its ``__slots__`` (named here: a compiled class keeps no ``__slots__`` to read)."""


class Side:
    """One side of a pair: the model that answered, how it went and what it cost."""

    __slots__ = _SIDE_FIELDS

    model: str
    """Configured model name."""
    backend: str
    upstream_model: str
    status: int
    """HTTP status (0: no answer)."""
    ok: bool
    error: str | None
    """Error type (connect, timeout, http_5xx, protocol, cancelled, fallback, stream_error, ...)."""
    latency_s: float | None
    """Total time from sending the call to the last byte."""
    ttft_s: float | None
    """Time to the first streamed event (streams only)."""
    input_tokens: int
    output_tokens: int
    cost_usd: str
    """Exact cost (a Decimal as text)."""
    priced: bool
    """False when this side's model has no price: its ``cost_usd`` of 0 is not a cost (records written before
    this field read True)."""
    fallbacks: int

    def __init__(
        self,
        model: str = "",
        backend: str = "",
        upstream_model: str = "",
        status: int = 0,
        ok: bool = False,
        error: str | None = None,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: str = "0",
        priced: bool = True,
        fallbacks: int = 0,
    ) -> None:
        self.model = model
        self.backend = backend
        self.upstream_model = upstream_model
        self.status = status
        self.ok = ok
        self.error = error
        self.latency_s = latency_s
        self.ttft_s = ttft_s
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost_usd = cost_usd
        self.priced = priced
        self.fallbacks = fallbacks

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_usd)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _SIDE_FIELDS}


_PAIR_SLOTS: Final = (
    "id",
    "ts",
    "route",
    "task",
    "team",
    "key",
    "endpoint",
    "stream",
    "direction",
    "outcome",
    "reason",
    "primary",
    "candidate",
    "scores",
    "baseline",
    "errors",
    "details",
    "capture",
)
"""``PairRecord``'s attributes, its ``__slots__`` (named here: a compiled class keeps no ``__slots__`` to read)."""
_PAIR_FIELDS: Final = tuple(f for f in _PAIR_SLOTS if f not in ("primary", "candidate"))
"""What ``to_dict`` copies as it is (it adds the two sides as dicts, last)."""


class PairRecord:
    """The record of one sampled request: both sides, and what the comparators made of them."""

    __slots__ = _PAIR_SLOTS

    id: str
    """The request id (``x-request-id``)."""
    ts: float
    route: str
    task: str | None
    team: str | None
    key: str
    endpoint: str
    stream: bool
    direction: str
    outcome: str
    reason: str | None
    primary: Side
    candidate: Side
    scores: dict[str, float]
    """Comparator name -> the candidate's score (absent when not applicable or failed)."""
    baseline: dict[str, float]
    """Single-sided comparators: the primary's own score."""
    errors: dict[str, str]
    """Comparator name -> why it could not score this pair."""
    details: dict[str, str]
    capture: dict[str, Any] | None
    """Raw request and outputs, only where capture is enabled for the route and allowed for the team."""

    def __init__(
        self,
        id: str,
        ts: float,
        route: str,
        task: str | None,
        team: str | None,
        key: str,
        endpoint: str,
        stream: bool,
        direction: str = "forward",
        outcome: str = PAIRED,
        reason: str | None = None,
        primary: Side | None = None,
        candidate: Side | None = None,
        scores: dict[str, float] | None = None,
        baseline: dict[str, float] | None = None,
        errors: dict[str, str] | None = None,
        details: dict[str, str] | None = None,
        capture: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.ts = ts
        self.route = route
        self.task = task
        self.team = team
        self.key = key
        self.endpoint = endpoint
        self.stream = stream
        self.direction = direction
        self.outcome = outcome
        self.reason = reason
        self.primary = Side() if primary is None else primary
        self.candidate = Side() if candidate is None else candidate
        self.scores = {} if scores is None else scores
        self.baseline = {} if baseline is None else baseline
        self.errors = {} if errors is None else errors
        self.details = {} if details is None else details
        self.capture = capture

    @property
    def quality(self) -> bool:
        """Both sides answered and the baseline was not replaced: counts in quality statistics."""
        return self.outcome == PAIRED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (shallow: nested dicts are shared, not copied; a deep copy would cost ~100x more)."""
        d = {f: getattr(self, f) for f in _PAIR_FIELDS}
        d["primary"] = self.primary.as_dict()
        d["candidate"] = self.candidate.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairRecord:
        d = dict(d)
        d["primary"] = Side(**d.get("primary") or {})
        d["candidate"] = Side(**d.get("candidate") or {})
        return cls(**d)
