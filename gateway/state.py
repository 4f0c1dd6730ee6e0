"""What the app lifespan owns: the current runtime (swapped atomically), backends, accountant."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.accounting_setup import build_accountant, build_catalog
from gateway.config import GatewayConfig
from gateway.runtime import Runtime
from routing.dispatch import Dispatcher
from serving.registry import BackendRegistry

log = logging.getLogger("pointsman")


class GatewayState:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.runtime = Runtime.build(config)
        self.registry = BackendRegistry()
        self.dispatcher = Dispatcher(self.registry, config.server.request_timeout_s)
        self.accountant = build_accountant(config)
        self.started_at = time.time()
        self.ready = False
        self.draining = False
        self.in_flight = 0
        self._swap_lock = asyncio.Lock()

    async def start(self) -> None:
        await self.registry.sync(self.runtime.config.backends)
        await self.accountant.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
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
                await asyncio.sleep(runtime.config.server.request_timeout_s)
                for b in retired:
                    await b.close()

            task = asyncio.get_running_loop().create_task(close_later())
            self._bg = task
