"""Self-hosted prices from measurement: a vLLM fleet's GPU cost divided by the tokens it actually processed.

The gateway scrapes each metered fleet's ``/metrics`` in the background (``gateway.vllm_pricing``, never on the
request path) and hands every scrape to ``MeasuredPrices.observe``. A window with at least the backend's
``throughput_min_tokens`` tokens puts its rate in force: the per-endpoint rate (``gpu_count`` is per endpoint)
becomes the throughput of every model the backend serves, adapters included, and accounting prices each token
at ``gpu_hour_usd * gpu_count / 3600 / tokens_per_s`` (the GPU-hour rule is ``Pricing.gpu_hours``: a model's
pricing entry wins over its backend's).

Why input + output tokens: every token type of a GPU-priced model costs the same per-token price, so the rate
it divides by must count every token the GPUs processed; then the costs the ledger records over a window add
up to exactly what the fleet's GPU hours cost in it. (Dividing by generated tokens alone and charging prompt
tokens as well would over-count the GPU cost by the prompt/output ratio.) The generation rate is reported
alongside (``cost_per_generated_mtok_usd``), the figure to quote as "cost per million output tokens at this
utilisation".

A window with fewer tokens leaves the last measured price in force: an idle fleet does not jump to a huge or
undefined price. The price is the cost *at the measured utilisation*; a half-idle fleet makes each token twice
as expensive, which is what a shadow comparison should see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

from accounting.pricing import MTOK, GpuHours, Pricing


class FleetRate(Protocol):
    """One scrape of a fleet's token counters over the trailing window (``serving.vllm.fleet.FleetThroughput``)."""

    @property
    def endpoints(self) -> int: ...
    @property
    def scraped(self) -> int: ...
    @property
    def window_s(self) -> float: ...
    @property
    def generation_tokens(self) -> float: ...
    @property
    def prompt_tokens(self) -> float: ...
    @property
    def generation_tps(self) -> float: ...
    @property
    def prompt_tps(self) -> float: ...
    @property
    def running(self) -> float: ...
    @property
    def waiting(self) -> float: ...
    @property
    def errors(self) -> Mapping[str, str]: ...
    @property
    def total_tps(self) -> float: ...
    @property
    def total_tokens(self) -> float: ...


class Measured:
    """The last measurement put in force for a backend."""

    __slots__ = ("at", "fleet", "tokens_per_s_per_endpoint", "models")

    at: Final[float]
    """Wall-clock time it was taken."""
    fleet: Final[FleetRate]
    tokens_per_s_per_endpoint: Final[float]
    models: Final[tuple[str, ...]]
    """Configured model names it priced."""

    def __init__(
        self,
        at: float,
        fleet: FleetRate,
        tokens_per_s_per_endpoint: float,
        models: tuple[str, ...],
    ) -> None:
        self.at = at
        self.fleet = fleet
        self.tokens_per_s_per_endpoint = tokens_per_s_per_endpoint
        self.models = models


class MeasuredPrices:
    """Measured fleet throughput -> self-hosted prices, and the report of what each model is charged.

    ``pricing`` returns the prices in force (replaced on config swaps); ``reprice`` is the accountant's hook that
    records a model's throughput and republishes the price gauges."""

    def __init__(self, pricing: Callable[[], Pricing], reprice: Callable[[str, float], None]) -> None:
        self._pricing = pricing
        self._reprice = reprice
        self.measured: dict[str, Measured] = {}
        self.last: dict[str, FleetRate] = {}
        """Backend -> its latest scrape (in force or not)."""

    # -- what to measure -----------------------------------------------------------------------------------
    def models_of(self, backend: str) -> list[str]:
        return [n for n, m in self._pricing().catalog.models.items() if m.backend == backend]

    def fleet_gpu_hours(self, backend: str) -> GpuHours | None:
        """The fleet's GPU-hour price: the one its models are charged from when they agree (all from the backend,
        or all from the same pricing entry values), else the backend's own; None when nothing prices it."""
        pricing = self._pricing()
        facts = pricing.catalog.backends.get(backend)
        if facts is None or not facts.self_hosted:
            return None
        rates = [g for m in self.models_of(backend) if (g := pricing.model_gpu_hours(m)) is not None]
        if rates and len({(g.usd, g.gpus) for g in rates}) == 1:
            return rates[0]
        if facts.gpu_hour_usd:
            return GpuHours(facts.gpu_hour_usd, facts.gpu_count, "backend")
        return rates[0] if rates else None

    def metered_backends(self) -> list[str]:
        """Self-hosted backends whose fleet (or one of whose models) has a GPU-hour price: the ones to measure."""
        return sorted(b for b in self._pricing().catalog.backends if self.fleet_gpu_hours(b) is not None)

    # -- measurements in ---------------------------------------------------------------------------------------
    def observe(self, backend: str, fleet: FleetRate) -> bool:
        """A scrape of ``backend``'s fleet: put it in force when the window holds enough tokens; True if it did."""
        self.last[backend] = fleet
        facts = self._pricing().catalog.backends.get(backend)
        min_tokens = facts.throughput_min_tokens if facts is not None else 1
        if (
            fleet.window_s <= 0
            or fleet.total_tokens < min_tokens
            or fleet.total_tps <= 0
            or fleet.endpoints <= 0
        ):
            return False
        per_endpoint = fleet.total_tps / fleet.endpoints
        models = self.models_of(backend)
        for model in models:
            self._reprice(model, per_endpoint)
        self.measured[backend] = Measured(time.time(), fleet, per_endpoint, tuple(models))
        return True

    def reapply(self) -> None:
        """Models added to a measured backend since (an adapter registered through the admin API) get the
        measurement in force at once instead of staying unpriced until the next scrape."""
        for backend, m in list(self.measured.items()):
            models = tuple(self.models_of(backend))
            if models != m.models:
                for model in set(models) - set(m.models):
                    self._reprice(model, m.tokens_per_s_per_endpoint)
                self.measured[backend] = Measured(m.at, m.fleet, m.tokens_per_s_per_endpoint, models)

    def forget(self, keep: set[str]) -> None:
        """Drop the last scrapes of backends no longer measured."""
        for gone in set(self.last) - keep:
            del self.last[gone]

    # -- reports -----------------------------------------------------------------------------------------------
    def report(self) -> list[dict[str, Any]]:
        """Per metered vLLM backend: the measurement in force and the prices it gives (for the admin API and the
        spend report)."""
        out = []
        for name in self.metered_backends():
            doc = self.backend_report(name)
            if doc is not None:
                out.append(doc)
        return out

    def backend_report(self, name: str) -> dict[str, Any] | None:
        """One backend's report; None when it has no GPU-hour price (nothing is measured)."""
        pricing = self._pricing()
        facts = pricing.catalog.backends.get(name)
        hours = self.fleet_gpu_hours(name)
        if facts is None or hours is None:
            return None
        m = self.measured.get(name)
        last = self.last.get(name)
        n = len(facts.endpoints)
        fleet_hour = hours.usd * hours.gpus * n
        doc: dict[str, Any] = {
            "backend": name,
            "gpu_hour_usd": str(hours.usd),
            "gpu_count_per_endpoint": hours.gpus,
            "endpoints": n,
            "fleet_usd_per_hour": str(fleet_hour),
            "window_s": facts.throughput_window_s,
            "min_tokens": facts.throughput_min_tokens,
            "measured": None,
            "last_scrape": fleet_doc(last) if last is not None else None,
            "models": [],
        }
        if m is not None:
            f = m.fleet
            per_gen = (
                fleet_hour / Decimal(3600) / Decimal(str(f.generation_tps)) * MTOK
                if f.generation_tps > 0
                else None
            )
            doc["measured"] = {
                **fleet_doc(f),
                "at": m.at,
                "tokens_per_s_per_endpoint": m.tokens_per_s_per_endpoint,
                "cost_per_generated_mtok_usd": str(per_gen) if per_gen is not None else None,
            }
        for model_name in self.models_of(name):
            mf = pricing.catalog.models[model_name]
            upstream = mf.upstream_model or model_name
            price = pricing.lookup(name, upstream, model_name)
            g = pricing.model_gpu_hours(model_name)
            doc["models"].append(
                {
                    "model": model_name,
                    "upstream_model": upstream,
                    "source": price.source if price is not None else None,
                    "gpu_hour_usd": str(g.usd) if g is not None else None,
                    "gpu_count": g.gpus if g is not None else None,
                    "gpu_hour_from": g.source if g is not None else None,
                    "cost_per_mtok_usd": str(price.output_per_mtok) if price is not None else None,
                    "input_per_mtok_usd": str(price.input * MTOK) if price is not None else None,
                    "output_per_mtok_usd": str(price.output * MTOK) if price is not None else None,
                }
            )
        return doc


def fleet_doc(f: FleetRate) -> dict[str, Any]:
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
