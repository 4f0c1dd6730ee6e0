"""The runtime in force and the swap that installs the next one.

A policy change builds a new ``Runtime`` (``build``) and ``swap`` installs it: backends whose config changed are
rebuilt, the accountant gets the new catalog, and one reference is replaced. In-flight requests keep the runtime
they started with; replaced backends are closed only after ``server.request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import random

from accounting.accountant import Accountant
from gateway.accounting_setup import build_catalog
from gateway.config import GatewayConfig
from gateway.runtime import Runtime
from routing.eligibility import ConsentView
from routing.policy import CostOf, HealthView
from serving.registry import BackendRegistry


class LiveRuntime:
    def __init__(
        self,
        config: GatewayConfig,
        registry: BackendRegistry,
        accountant: Accountant,
        rng: random.Random,
        health: HealthView,
        cost_of: CostOf,
        approvals: ConsentView | None = None,
    ) -> None:
        self.registry = registry
        self.accountant = accountant
        # what outlives policy swaps: the seeded rng, backend health, the price lookup
        self._rng = rng
        self._health = health
        self._cost_of = cost_of
        self._approvals = approvals
        self.runtime = self.build(config, 0)
        self._retiring: set[asyncio.Task[None]] = set()
        self._swap_lock = asyncio.Lock()

    def build(self, cfg: GatewayConfig, version: int) -> Runtime:
        """The runtime of a validated config at a policy version (not yet in force)."""
        return Runtime.build(
            cfg, version, rng=self._rng, health=self._health, cost_of=self._cost_of, approvals=self._approvals
        )

    async def start(self) -> None:
        """Start the backends of the runtime in force."""
        await self.registry.sync(self.runtime.config.backends)

    async def close(self) -> None:
        """Close backends retired by earlier swaps now (the registry closes the live ones)."""
        for task in list(self._retiring):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def swap(self, runtime: Runtime) -> None:
        """Install a new runtime. In-flight requests keep the one they started with."""
        async with self._swap_lock:
            retired = await self.registry.sync(runtime.config.backends)
            self.runtime = runtime
            self.accountant.reconfigure(
                runtime.config.accounting, build_catalog(runtime.config, runtime.keys.by_hash.values())
            )
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
