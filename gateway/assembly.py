"""The composition root: every long-lived component of a gateway, built once, in order, each given only what it
needs; and the order they start and close in."""

from __future__ import annotations

import os

from accounting.accountant import Accountant
from accounting.approvals.book import ApprovalBook
from accounting.approvals.store import open_store
from accounting.export.exporters import Exporters
from gateway.accounting_setup import build_accountant
from gateway.capture import CaptureGate
from gateway.config import GatewayConfig
from gateway.inference.handler import InferenceHandler
from gateway.inference.ownership import ResponseOwnership
from gateway.live_runtime import LiveRuntime
from gateway.policy_control import PolicyControl, cost_lookup, routing_rng
from gateway.shadow_setup import ControlRouteEditor, Shadow
from gateway.state import GatewayState
from gateway.upstream_models import UpstreamModels
from gateway.vllm_pricing import SelfHostedPricing
from routing.dispatch import Dispatcher
from routing.health import HealthTracker
from routing.response_owners import RedisResponseOwners, ResponseOwners, postgres_owners, sqlite_owners
from serving.registry import BackendRegistry


class _MetricsObserver:
    """Routing's health events into the metrics (fallbacks are counted by the accountant per request)."""

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant

    def fallback(self, route: str, backend: str, reason: str) -> None:
        return None

    def circuit(self, backend: str, endpoint: str, state: int) -> None:
        self.accountant.metrics.set_circuit(backend, endpoint, state)


def approval_book(config: GatewayConfig) -> ApprovalBook:
    """Approvals of every purpose: in PostgreSQL with ``database.backend: postgres``, else in Redis with
    ``redis.url``, else in the capture store's SQLite file."""
    path = config.capture.store_path(config.server.data_dir)
    refresh_s = min(config.capture.approval_refresh_s, config.consent.approval_refresh_s)
    return ApprovalBook(open_store(path, config.redis.url, config.database.shared_dsn), refresh_s)


def response_owners(config: GatewayConfig) -> ResponseOwners:
    """Who made each stored Responses API answer: in PostgreSQL with ``database.backend: postgres``, else in Redis
    with ``redis.url``, else in ``<data_dir>/responses.sqlite3`` (as the policy store)."""
    keep_s = config.routing.response_owners_days * 86400
    if config.database.shared_dsn:
        return postgres_owners(config.database.shared_dsn, keep_s)
    if config.redis.url:
        return RedisResponseOwners(config.redis.url, keep_s)
    return sqlite_owners(os.path.join(config.server.data_dir, "responses.sqlite3"), keep_s)


def assemble(config: GatewayConfig) -> GatewayState:
    registry = BackendRegistry(config.server.max_response_bytes)
    accountant = build_accountant(config)
    # Routing: health and the seeded rng outlive policy swaps; the policy itself is the live runtime's.
    health = HealthTracker(config.routing, registry)
    health.observer = _MetricsObserver(accountant)  # breaker state -> pointsman_circuit_state
    approvals = approval_book(config)  # capture and third-party processing approvals, one store
    live = LiveRuntime(
        config, registry, accountant, routing_rng(config), health, cost_lookup(accountant), approvals
    )
    capture = CaptureGate(
        config, accountant, lambda: live.runtime.config, lambda: live.runtime.consent, approvals
    )
    exporters = Exporters(
        config.observability,
        accountant.metrics,
        lambda: accountant.catalog.backends,
        capture.exported_content,  # content only for teams approved for data capture, redacted
    )
    accountant.exporters = exporters  # request logs, traces, analytics events: off the request path
    dispatcher = Dispatcher(registry, config.server.request_timeout_s, health, config.routing.backoff)
    control = PolicyControl(config, live)
    # shadow tests: hub on the request path, promotion controller changing routes through the policy control
    shadow = Shadow(config, dispatcher, accountant, lambda: live.runtime.policy, ControlRouteEditor(control))
    shadow.hub.capture_allowed = capture.capture_allowed  # raw pair text only for approved teams
    shadow.hub.redact = capture.redact_document  # and redacted before the pair store sees it
    vllm_pricing = SelfHostedPricing(lambda: live.runtime.config, registry, accountant)  # measured GPU prices
    upstream_models = UpstreamModels(
        lambda: live.runtime.policy.models, registry, config.server.models_refresh_s
    )
    owners = ResponseOwnership(
        response_owners(config), lambda: live.runtime.config.redis.on_unavailable == "fail_closed"
    )
    inference = InferenceHandler(live, accountant, dispatcher, shadow.hub, capture, owners, exporters.sampler)
    return GatewayState(
        config=config,
        live=live,
        registry=registry,
        accountant=accountant,
        capture=capture,
        approvals=approvals,
        health=health,
        dispatcher=dispatcher,
        control=control,
        shadow=shadow,
        vllm_pricing=vllm_pricing,
        inference=inference,
        upstream_models=upstream_models,
        startup=[
            exporters.start,
            control.start,  # the stored policy first: it decides which backends to start
            live.start,
            accountant.start,
            shadow.start,
            approvals.start,
            capture.start,
            vllm_pricing.start,
            upstream_models.start,  # after the backends: it reads their model lists
            owners.open,
        ],
        shutdown=[
            shadow.close,  # in-flight shadows finish (bounded grace) while backends are up
            control.close,
            owners.close,  # the last answers' owners written
            vllm_pricing.close,
            upstream_models.close,
            live.close,  # closes backends retired by policy swaps now
            capture.close,
            approvals.close,
            accountant.close,
            exporters.close,  # after the accountant: its last records are exported
            registry.close,
        ],
    )
