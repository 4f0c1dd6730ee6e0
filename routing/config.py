"""Strict configuration models for routing rules (the ``routes:`` section and the admin API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.shadow.config import PromoteWhen, ShadowConfig, check_route_shadow


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
    sticky: str | None = None
    """Where the sticky key comes from: ``user`` (the body's user field), ``tag:<name>``, or ``header``
    (``x-pointsman-sticky``). Defaults to ``x-pointsman-sticky`` / ``user`` when present."""
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    """Total time for the request across retries and fallbacks."""
    max_retries: int | None = Field(default=None, ge=0, le=10)
    """Retries of a failed attempt (each hop counts) before giving up."""
    defaults: dict[str, Any] = Field(default_factory=dict)
    """Request parameters filled in when the client did not send them (e.g. ``max_tokens``)."""
    shadow: ShadowConfig | None = None
    """Shadow test of a candidate model on this route's live traffic, and its promotion ramp (docs/shadow.md)."""
    promote_when: PromoteWhen | None = None
    """Criteria for the shadow report's verdict (needs ``shadow``)."""
    capture: dict[str, Any] | None = None
    """Consent-gated capture of traffic for post-training data."""

    @model_validator(mode="after")
    def _shadow_consistent(self) -> RouteConfig:
        check_route_shadow(self.shadow, self.promote_when)
        return self
