"""The loop that feeds measured self-hosted pricing: scrapes each metered vLLM fleet's ``/metrics``.

For every vLLM backend with a GPU-hour price (``accounting.selfhosted.MeasuredPrices.metered_backends``) a
background task measures, every ``health_interval_s`` and over the trailing ``throughput_window_s``, how many
tokens per second the fleet processed (``serving.vllm.fleet.FleetMeter``: ``vllm:generation_tokens_total`` +
``vllm:prompt_tokens_total`` increases; never on the request path) and hands each measurement to the
accountant (``accountant.measured.observe``), which decides the prices (``accounting/selfhosted.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from accounting.accountant import Accountant
from gateway.config import GatewayConfig
from serving.config import VLLMBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from serving.registry import BackendRegistry

if TYPE_CHECKING:  # imported by the first tick that meters a fleet: a start without vLLM fleets skips it
    from serving.vllm.fleet import FleetMeter, FleetThroughput

log = logging.getLogger("pointsman.vllm")

_TICK_S = 0.25


class SelfHostedPricing:
    def __init__(
        self,
        config: Callable[[], GatewayConfig],
        registry: BackendRegistry,
        accountant: Accountant,
        clock: Any = time.monotonic,
    ) -> None:
        self.config = config
        """The config in force."""
        self.registry = registry
        self.accountant = accountant
        self.clock = clock
        self.meters: dict[str, FleetMeter] = {}
        self.due: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pointsman-vllm-pricing")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- what to measure -----------------------------------------------------------------------------------
    def priced_backends(self) -> dict[str, tuple[OpenAIHTTPBackend, VLLMBackendConfig]]:
        out: dict[str, tuple[OpenAIHTTPBackend, VLLMBackendConfig]] = {}
        cfgs = self.config().backends
        for name in self.accountant.measured.metered_backends():
            cfg = cfgs.get(name)
            b = self.registry.get(name)
            if isinstance(cfg, VLLMBackendConfig) and isinstance(b, OpenAIHTTPBackend):
                out[name] = (b, cfg)
        return out

    # -- the loop --------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a scrape bug stop pricing for good
                log.exception("self-hosted pricing: measurement round failed")
            await asyncio.sleep(_TICK_S)

    async def tick(self) -> None:
        """Scrape the backends that are due (concurrently) and hand the measurements to the accountant."""
        now = self.clock()
        backends = self.priced_backends()
        measured = self.accountant.measured
        for gone in set(self.meters) - set(backends):
            del self.meters[gone]
            self.due.pop(gone, None)
        measured.forget(set(backends))
        if not backends:
            return
        from serving.vllm.fleet import FleetMeter

        due: list[tuple[str, FleetMeter]] = []
        for name, (b, cfg) in backends.items():
            meter = self.meters.get(name)
            if meter is None or meter.backend is not b or meter.window_s != cfg.throughput_window_s:
                meter = self.meters[name] = FleetMeter(
                    b, cfg.throughput_window_s, clock=self.clock, stale_after_s=3 * cfg.health_interval_s + 5
                )
                self.due[name] = now
            if now >= self.due.get(name, now):
                self.due[name] = now + cfg.health_interval_s
                due.append((name, meter))
        if not due:
            return
        fleets = await asyncio.gather(
            *(self._measure(m) if self._attach(name, m) else m.scrape() for name, m in due)
        )
        for (name, _), fleet in zip(due, fleets, strict=True):
            measured.observe(name, fleet)

    def _attach(self, name: str, meter: FleetMeter) -> bool:
        """Feed the meter from the backend's health monitor when it offers its ``/metrics`` bodies
        (``metrics_listeners``), so endpoints are not scraped twice; False: scrape here."""
        mon = self.registry.monitors.get(name)
        if mon is None or mon.backend is not meter.backend:
            return False
        listeners = mon.metrics_listeners
        if meter.observe not in listeners:
            from serving.vllm.fleet import FleetMeter

            # drop a replaced meter's hook (the window length changed), then add this one
            listeners[:] = [
                cb for cb in listeners if not isinstance(getattr(cb, "__self__", None), FleetMeter)
            ]
            listeners.append(meter.observe)
        return True

    @staticmethod
    async def _measure(meter: FleetMeter) -> FleetThroughput:
        return meter.summary()
