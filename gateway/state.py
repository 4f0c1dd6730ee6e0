"""What the app lifespan owns: the current runtime (swapped atomically), backends, accountant."""

from __future__ import annotations

import asyncio
import logging
import time

from accounting.service import Accountant
from gateway.accounting_setup import build_accountant, build_catalog
from gateway.capture import CaptureGate
from gateway.config import GatewayConfig
from gateway.control import PolicyControl, cost_lookup, routing_rng
from gateway.runtime import Runtime
from gateway.shadow_setup import Shadow
from gateway.vllm_pricing import SelfHostedPricing
from routing.dispatch import Dispatcher
from routing.health import HealthTracker
from serving.registry import BackendRegistry

log = logging.getLogger("pointsman")


class _MetricsObserver:
    """Routing's health events into the metrics (fallbacks are counted by the accountant per request)."""

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant

    def fallback(self, route: str, backend: str, reason: str) -> None:
        return None

    def circuit(self, backend: str, endpoint: str, state: int) -> None:
        self.accountant.metrics.set_circuit(backend, endpoint, state)


class GatewayState:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.registry = BackendRegistry()
        self.accountant = build_accountant(config)
        self.capture = CaptureGate(config, self.accountant, lambda: self.runtime.config)
        # Routing: health and the seeded rng outlive policy swaps; the policy itself lives in `control`.
        self.rng = routing_rng(config)
        self.health = HealthTracker(config.routing, self.registry)
        self.health.observer = _MetricsObserver(self.accountant)  # breaker state -> pointsman_circuit_state
        self.cost_of = cost_lookup(self.accountant)
        self.runtime = Runtime.build(config, rng=self.rng, health=self.health, cost_of=self.cost_of)
        self.dispatcher = Dispatcher(self.registry, config.server.request_timeout_s, self.health, config.routing.backoff)
        self.control = PolicyControl(self)
        self.shadow = Shadow(self)  # shadow tests: hub on the request path, promotion controller
        self.shadow.hub.capture_allowed = self.capture.capture_allowed  # raw pair text only for approved teams
        self.shadow.hub.redact = self.capture.redact_document  # and redacted before the pair store sees it
        self.vllm_pricing = SelfHostedPricing(self)  # measured self-hosted prices (background /metrics)
        self._retiring: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.ready = False
        self.draining = False
        self.in_flight = 0
        self._swap_lock = asyncio.Lock()

    def begin_drain(self) -> None:
        """Shutdown is coming (SIGTERM): readiness fails from now on; requests are still served."""
        self.draining = True

    async def start(self) -> None:
        await self.control.start()
        await self.registry.sync(self.runtime.config.backends)
        await self.accountant.start()
        await self.shadow.start()
        await self.capture.start()
        await self.vllm_pricing.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.shadow.close()  # in-flight shadows finish (bounded grace) while backends are up
        await self.control.close()
        await self.vllm_pricing.close()
        for task in list(self._retiring):
            task.cancel()  # closes the retired backends now (see swap)
            await asyncio.gather(task, return_exceptions=True)
        await self.capture.close()
        await self.accountant.close()
        await self.registry.close()

    async def swap(self, runtime: Runtime) -> None:
        """Install a new runtime. In-flight requests keep the one they started with."""
        async with self._swap_lock:
            retired = await self.registry.sync(runtime.config.backends)
            self.runtime = runtime
            self.accountant.reconfigure(runtime.config.accounting, build_catalog(runtime.config, runtime.keys.by_hash.values()))
        if retired:
            # Let in-flight requests on replaced backends finish before closing their sessions.
            async def close_later() -> None:
                try:
                    await asyncio.sleep(runtime.config.server.request_timeout_s)
                finally:
                    for b in retired:
                        await b.close()

            task = asyncio.get_running_loop().create_task(close_later())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
