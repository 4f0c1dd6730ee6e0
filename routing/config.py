"""Strict configuration models for routing rules (the ``routes:`` section and the admin API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from accounting.capture.config import CapturePolicy
from routing.shadow.config import PromoteWhen, ShadowConfig, check_route_shadow
from wire.config_model import StrictModel
from wire.json_object import MAX_DEPTH, nests_within


class MatchConfig(StrictModel):
    """What a rule matches. Every given condition must hold; an empty match matches everything."""

    model: str | None = None
    """Requested model name, exact or glob (``gpt-4o*``)."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Tags that must be present with these values (glob allowed), e.g. ``{task: summarize}``."""
    key: str | None = None
    """Client key name (glob allowed)."""
    team: str | None = None
    """Client key team (glob allowed)."""


class TargetConfig(StrictModel):
    model: str
    """A model name from ``models``."""
    weight: float = Field(default=1.0, ge=0, le=1_000_000)
    """Relative share of traffic (95 and 5 for a canary)."""


class RouteConfig(StrictModel):
    """One routing rule; rules are evaluated in order and the first match wins."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Unique rule name, shown in ``x-pointsman-route``."""
    match: MatchConfig = Field(default_factory=MatchConfig)
    """Conditions."""
    targets: list[TargetConfig] = Field(default_factory=list)
    """Models to send matching requests to, with weights; empty keeps the requested model."""
    fallbacks: list[str] = Field(default_factory=list)
    """Models tried in order when the chosen target fails before any byte reached the client."""
    strategy: Literal["weighted", "least_latency", "cheapest"] = "weighted"
    """How to choose among healthy targets."""
    sticky: str | None = Field(default=None, pattern=r"^(user|header|tag:[A-Za-z0-9_.:-]{1,128})$")
    """Where the sticky key comes from: ``user`` (the body's user field), ``tag:<name>``, or ``header``
    (``x-pointsman-sticky``). Unset: ``x-pointsman-sticky`` when sent, else ``user`` when sent, else random."""
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    """Total time for the request across retries and fallbacks (default ``server.request_timeout_s``)."""
    max_retries: int | None = Field(default=None, ge=0, le=10)
    """Retries after a failed attempt; each goes to the next model of chosen-then-fallbacks, cycling when
    there are more retries than models. Unset: each model is tried once."""
    defaults: dict[str, Any] = Field(default_factory=dict)
    """Request parameters filled in when the client did not send them (e.g. ``max_tokens``), on the generating
    endpoints only, the output limit under each endpoint's own name (``wire.route_defaults``). Not ``model`` or
    ``stream``, which the gateway decides."""
    shadow: ShadowConfig | None = None
    """Shadow test of a candidate model on this route's live traffic, and its promotion ramp (docs/shadow.md)."""
    promote_when: PromoteWhen | None = None
    """Criteria for the shadow report's verdict (needs ``shadow``)."""
    capture: CapturePolicy | None = None
    """Consent-gated capture of this route's traffic as post-training data: ``{sample_rate, redact, retain_days}``
    (only for teams approved through the admin API; see docs/data-loop.md)."""

    @field_validator("fallbacks")
    @classmethod
    def _fallbacks_unique(cls, v: list[str]) -> list[str]:
        dup = sorted({f for f in v if v.count(f) > 1})
        if dup:
            raise ValueError(f"duplicate fallbacks: {dup}")
        return v

    @field_validator("defaults")
    @classmethod
    def _defaults_nest_within_a_request(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not nests_within(v):  # they become members of the request body
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        decided = sorted(k for k in v if k in ("model", "stream"))
        if decided:  # a default model is a route's target; a default stream would change the answer's form
            raise ValueError(f"{', '.join(decided)} cannot be a default (use targets, or the client's own)")
        return v

    @model_validator(mode="after")
    def _shadow_consistent(self) -> RouteConfig:
        check_route_shadow(self.shadow, self.promote_when)
        return self


class BreakerConfig(StrictModel):
    """The circuit breaker kept for every backend endpoint."""

    consecutive_failures: int = Field(default=5, ge=1, le=10_000)
    """Open after this many failures in a row (connection errors, timeouts, 5xx, broken responses)."""
    error_rate: float = Field(default=0.5, gt=0, le=1)
    """Open when the failure fraction over ``window_s`` reaches this (with at least ``min_requests``)."""
    window_s: float = Field(default=30.0, gt=0, le=3600)
    """Length of the sliding window for ``error_rate``."""
    min_requests: int = Field(default=20, ge=1)
    """Calls needed in the window before ``error_rate`` can open the breaker."""
    open_s: float = Field(default=10.0, gt=0, le=3600)
    """How long an open breaker skips the endpoint before letting one probe request through (half-open)."""
    max_open_s: float = Field(default=120.0, gt=0, le=86_400)
    """Each failed probe doubles the open time, up to this."""


class BackoffConfig(StrictModel):
    """Delay before a retry: ``min(max_s, base_s * 2**(retry-1))``, jittered to between half and all of it."""

    base_s: float = Field(default=0.025, ge=0, le=60)
    """Delay before the first retry (before jitter)."""
    max_s: float = Field(default=2.0, ge=0, le=600)
    """Cap on the delay."""


class RoutingSettings(StrictModel):
    """The ``routing:`` section: how rules are executed (the rules themselves are ``routes:``)."""

    seed: int | None = None
    """Seed for weighted choices (tests); also ``POINTSMAN_ROUTING_SEED``. None: unpredictable."""
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    """Circuit breaker per backend endpoint."""
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    """Retry backoff."""
    latency_alpha: float = Field(default=0.3, gt=0, le=1)
    """Weight of the newest sample in each target's latency EWMA (``least_latency``)."""
    latency_explore: float = Field(default=0.05, ge=0, le=1)
    """Fraction of ``least_latency`` decisions that pick by weight instead, so slower targets stay measured."""
    sync_interval_s: float = Field(default=0.5, gt=0, le=60)
    """How often a replica checks the policy store's version (besides Redis pub/sub notifications)."""
    response_owners_days: float = Field(default=30.0, gt=0, le=366)
    """How long the owner of a stored Responses API answer and of its items is kept (``routing.response_owners``): a
    continuation of an older one, or a citation of its items, is no longer checked. 30 days is the provider's
    retention of stored responses; each record takes ~150-200 bytes (SQLite, Redis or PostgreSQL) and an answer
    keeps one for itself and one per output item, so size it by the Responses answers a day."""
