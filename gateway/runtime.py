"""Immutable runtime objects built once from a config; a change builds a new one and swaps one reference."""

from __future__ import annotations

import random
from typing import Final

from gateway.config import GatewayConfig
from gateway.keys import ClientKey, KeyRing
from routing.eligibility import ConsentView, ThirdPartyConsent
from routing.models import ModelTable
from routing.policy import CostOf, HealthView, Policy
from wire.sse import StreamBounds


class Runtime:
    """The policy in force, compiled once from a config version: routing, keys, consent and stream bounds. The
    live runtime swaps one for another whole (``gateway.live_runtime``)."""

    __slots__ = ("config", "version", "policy", "keys", "admin_key", "consent", "stream_bounds")

    config: Final[GatewayConfig]
    version: Final[int]
    policy: Final[Policy]
    keys: Final[KeyRing]
    admin_key: Final[str | None]
    consent: Final[ThirdPartyConsent]
    """Which keys' requests may reach third-party backends (the rest get an in-house constraint)."""
    stream_bounds: Final[StreamBounds]
    """What the relay holds of one stream (``server.max_event_bytes``, ``server.max_retained_stream_bytes``)."""

    def __init__(
        self,
        config: GatewayConfig,
        version: int,
        policy: Policy,
        keys: KeyRing,
        admin_key: str | None,
        consent: ThirdPartyConsent,
        stream_bounds: StreamBounds,
    ) -> None:
        self.config = config
        self.version = version
        self.policy = policy
        self.keys = keys
        self.admin_key = admin_key
        self.consent = consent
        self.stream_bounds = stream_bounds

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
