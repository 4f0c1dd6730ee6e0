"""Self-hosted pricing from measurement: a vLLM fleet's GPU cost divided by the tokens it actually processed.

For every vLLM backend with a GPU-hour price (the backend's ``gpu_hour_usd``, or an ``accounting.pricing``
entry's for one of its models) a background task scrapes the fleet's ``/metrics`` every
``health_interval_s`` (``serving.vllm.fleet.FleetMeter``; never on the request path) and measures, over the
trailing ``throughput_window_s``, how many tokens per second the fleet processed
(``vllm:generation_tokens_total`` + ``vllm:prompt_tokens_total`` increases). It hands the accountant the
per-endpoint rate (``gpu_count`` is per endpoint) for every model served by the backend, adapters included;
accounting then prices each token at ``gpu_hour_usd * gpu_count / 3600 / tokens_per_s`` and publishes
``pointsman_selfhosted_cost_per_mtok_usd``.

Why input + output tokens: accounting charges every token type of a GPU-priced model the same per-token
price, so the rate it divides by must count every token the GPUs processed; then the costs the ledger
records over a window add up to exactly what the fleet's GPU hours cost in it. (Dividing by generated tokens
alone and charging prompt tokens as well would over-count the GPU cost by the prompt/output ratio.) The
generation rate is reported alongside (``cost_per_generated_mtok_usd``), the figure to quote as "cost per
million output tokens at this utilisation".

A window with fewer than ``throughput_min_tokens`` tokens leaves the last measured price in force: an idle
fleet does not jump to a huge or undefined price. The price is the cost *at the measured utilisation*; a
half-idle fleet makes each token twice as expensive, which is what a shadow comparison should see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from accounting.accountant import Accountant
from gateway.config import GatewayConfig
from serving.config import VLLMBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from serving.registry import BackendRegistry
from serving.vllm.fleet import FleetMeter, FleetThroughput

log = logging.getLogger("pointsman.vllm")

_TICK_S = 0.25
_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Measured:
    """The last measurement put in force for a backend."""

    at: float
    """Wall-clock time it was taken."""
    fleet: FleetThroughput
    tokens_per_s_per_endpoint: float
    models: tuple[str, ...]
    """Configured model names it priced."""


def _dec(v: Any) -> Decimal | None:
    if v is None:
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d > 0 else None


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
        self.measured: dict[str, Measured] = {}
        self.last_fleet: dict[str, FleetThroughput] = {}
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
    def models_of(self, backend: str) -> list[str]:
        return [n for n, m in self.config().models.items() if m.backend == backend]

    def gpu_hour(self, backend: str, cfg: VLLMBackendConfig) -> Decimal | None:
        """The backend's GPU-hour price, or one from an ``accounting.pricing`` entry of one of its models."""
        price = _dec(cfg.gpu_hour_usd)
        if price is not None:
            return price
        pricing = self.config().accounting.pricing
        for name, m in self.config().models.items():
            if m.backend != backend:
                continue
            for key in (name, m.adapter or m.upstream_model or name):
                o = pricing.get(key)
                if o is not None and o.gpu_hour_usd:
                    return _dec(o.gpu_hour_usd)
        return None

    def priced_backends(self) -> dict[str, tuple[OpenAIHTTPBackend, VLLMBackendConfig]]:
        out: dict[str, tuple[OpenAIHTTPBackend, VLLMBackendConfig]] = {}
        for name, cfg in self.config().backends.items():
            if not isinstance(cfg, VLLMBackendConfig) or self.gpu_hour(name, cfg) is None:
                continue
            b = self.registry.get(name)
            if isinstance(b, OpenAIHTTPBackend):
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
        """Scrape the backends that are due (concurrently) and put new measurements in force."""
        now = self.clock()
        backends = self.priced_backends()
        for gone in set(self.meters) - set(backends):
            del self.meters[gone]
            self.due.pop(gone, None)
        due: list[tuple[str, FleetMeter, VLLMBackendConfig]] = []
        for name, (b, cfg) in backends.items():
            meter = self.meters.get(name)
            if meter is None or meter.backend is not b or meter.window_s != cfg.throughput_window_s:
                meter = self.meters[name] = FleetMeter(
                    b, cfg.throughput_window_s, clock=self.clock, stale_after_s=3 * cfg.health_interval_s + 5
                )
                self.due[name] = now
            if now >= self.due.get(name, now):
                self.due[name] = now + cfg.health_interval_s
                due.append((name, meter, cfg))
        self._reapply()
        if not due:
            return
        fleets = await asyncio.gather(
            *(self._measure(m) if self._attach(name, m) else m.scrape() for name, m, _ in due)
        )
        for (name, _, cfg), fleet in zip(due, fleets, strict=True):
            self.last_fleet[name] = fleet
            self.apply(name, cfg, fleet)

    def _attach(self, name: str, meter: FleetMeter) -> bool:
        """Feed the meter from the backend's health monitor when it offers its ``/metrics`` bodies
        (``metrics_listeners``), so endpoints are not scraped twice; False: scrape here."""
        mon = self.registry.monitors.get(name)
        if mon is None or mon.backend is not meter.backend:
            return False
        listeners = mon.metrics_listeners
        if meter.observe not in listeners:
            # drop a replaced meter's hook (the window length changed), then add this one
            listeners[:] = [
                cb for cb in listeners if not isinstance(getattr(cb, "__self__", None), FleetMeter)
            ]
            listeners.append(meter.observe)
        return True

    @staticmethod
    async def _measure(meter: FleetMeter) -> FleetThroughput:
        return meter.summary()

    def _reapply(self) -> None:
        """Models added to a measured backend since (an adapter registered through the admin API) get the
        measurement in force at once instead of staying unpriced until the next scrape."""
        for name, m in list(self.measured.items()):
            models = tuple(self.models_of(name))
            if models != m.models:
                for model in set(models) - set(m.models):
                    self.accountant.set_measured_throughput(model, m.tokens_per_s_per_endpoint)
                self.measured[name] = Measured(m.at, m.fleet, m.tokens_per_s_per_endpoint, models)

    def apply(self, name: str, cfg: VLLMBackendConfig, fleet: FleetThroughput) -> bool:
        """Put a measurement in force when the window holds enough tokens; True if it did."""
        if fleet.window_s <= 0 or fleet.total_tokens < cfg.throughput_min_tokens or fleet.total_tps <= 0:
            return False
        per_endpoint = fleet.total_tps / fleet.endpoints
        models = self.models_of(name)
        acct = self.accountant
        for model in models:
            acct.set_measured_throughput(model, per_endpoint)
        self.measured[name] = Measured(time.time(), fleet, per_endpoint, tuple(models))
        return True

    # -- reports -------------------------------------------------------------------------------------------
    def report(self) -> list[dict[str, Any]]:
        """Per priced vLLM backend: the measurement in force and the prices it gives (for the admin API and
        the spend report)."""
        out: list[dict[str, Any]] = []
        cfgs = self.config().backends
        for name, cfg in sorted(cfgs.items()):
            if not isinstance(cfg, VLLMBackendConfig):
                continue
            gpu_hour = self.gpu_hour(name, cfg)
            if gpu_hour is None:
                continue
            out.append(self.backend_report(name, cfg, gpu_hour))
        return out

    def backend_report(self, name: str, cfg: VLLMBackendConfig, gpu_hour: Decimal) -> dict[str, Any]:
        m = self.measured.get(name)
        last = self.last_fleet.get(name)
        n = len(cfg.endpoints)
        fleet_hour = gpu_hour * cfg.gpu_count * n
        doc: dict[str, Any] = {
            "backend": name,
            "gpu_hour_usd": str(gpu_hour),
            "gpu_count_per_endpoint": cfg.gpu_count,
            "endpoints": n,
            "fleet_usd_per_hour": str(fleet_hour),
            "window_s": cfg.throughput_window_s,
            "min_tokens": cfg.throughput_min_tokens,
            "measured": None,
            "last_scrape": _fleet_doc(last) if last is not None else None,
            "models": [],
        }
        if m is not None:
            f = m.fleet
            per_gen = (
                fleet_hour / Decimal(3600) / Decimal(str(f.generation_tps)) * _MTOK
                if f.generation_tps > 0
                else None
            )
            doc["measured"] = {
                **_fleet_doc(f),
                "at": m.at,
                "tokens_per_s_per_endpoint": m.tokens_per_s_per_endpoint,
                "cost_per_generated_mtok_usd": str(per_gen) if per_gen is not None else None,
            }
        acct = self.accountant
        for model_name in self.models_of(name):
            mc = self.config().models[model_name]
            upstream = mc.adapter or mc.upstream_model or model_name
            price = acct.model_price(name, upstream)
            doc["models"].append(
                {
                    "model": model_name,
                    "upstream_model": upstream,
                    "source": getattr(price, "source", None),
                    "cost_per_mtok_usd": str(price.output_per_mtok) if price is not None else None,
                    "input_per_mtok_usd": str(price.input * _MTOK) if price is not None else None,
                    "output_per_mtok_usd": str(price.output * _MTOK) if price is not None else None,
                }
            )
        return doc


def _fleet_doc(f: FleetThroughput) -> dict[str, Any]:
    return {
        "window_s": round(f.window_s, 3),
        "endpoints_scraped": f.scraped,
        "generation_tokens": f.generation_tokens,
        "prompt_tokens": f.prompt_tokens,
        "generation_tokens_per_s": round(f.generation_tps, 3),
        "prompt_tokens_per_s": round(f.prompt_tps, 3),
        "tokens_per_s": round(f.total_tps, 3),
        "running": f.running,
        "waiting": f.waiting,
        "errors": dict(f.errors),
    }
