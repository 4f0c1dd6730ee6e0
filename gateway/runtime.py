"""Immutable runtime objects built once from a config; a change builds a new one and swaps one reference."""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.keys import ClientKey, KeyRing
from routing.eligibility import ConsentView, ThirdPartyConsent
from routing.models import ModelTable
from routing.policy import CostOf, HealthView, Policy
from wire.sse import StreamBounds


@dataclass(frozen=True, slots=True)
class Runtime:
    config: GatewayConfig
    version: int
    policy: Policy
    keys: KeyRing
    admin_key: str | None
    consent: ThirdPartyConsent
    """Which keys' requests may reach third-party backends (the rest get an in-house constraint)."""
    stream_bounds: StreamBounds
    """What the relay holds of one stream (``server.max_event_bytes``, ``server.max_retained_stream_bytes``)."""

    @classmethod
    def build(
        cls,
        cfg: GatewayConfig,
        version: int = 0,
        extra_keys: tuple[ClientKey, ...] = (),
        rng: random.Random | None = None,
        health: HealthView | None = None,
        cost_of: CostOf | None = None,
        approvals: ConsentView | None = None,
    ) -> Runtime:
        models = ModelTable(cfg.models)
        policy = Policy(cfg.routes, models, rng, health, cost_of, cfg.routing.latency_explore)
        keys = KeyRing([*(ClientKey.from_config(k) for k in cfg.keys), *extra_keys])
        third_party = frozenset(name for name, b in cfg.backends.items() if b.third_party)
        required = cfg.consent.third_party == "required"
        # approvals never read yet (a shared store down since start): the not_required default still applies
        consent = ThirdPartyConsent(third_party, required, approvals, unknown_approves=True)
        return cls(cfg, version, policy, keys, cfg.admin_key, consent, cfg.server.stream_bounds)
