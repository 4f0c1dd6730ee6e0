"""Prices as data; money as ``Decimal``.

Frontier prices come from litellm's maintained price table (``accounting.price_table``). Per-model
overrides in ``accounting.pricing`` win. Self-hosted models are priced only explicitly: per million tokens,
or from ``gpu_hour_usd * gpu_count / 3600 / throughput_tokens_per_s`` (throughput configured, or measured
later through ``Pricing.set_throughput``). A self-hosted model with neither is *unpriced*: it is reported at
startup (log + ``pointsman_model_unpriced``), never silently treated as free.

The GPU-hour rule lives here and nowhere else (``Pricing.gpu_hours``): a model's ``accounting.pricing`` entry
(by configured name, upstream id or ``backend/upstream-id``) wins over its vLLM backend's ``gpu_hour_usd`` and
``gpu_count``. What is charged and what the pricing reports show both come from it.

``Pricing.lookup`` runs on the request path: dict lookups only.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Final

from accounting.catalog import Catalog
from accounting.config import AccountingConfig, ModelPriceConfig
from accounting.price_table import PriceTable
from accounting.rates import MTOK as MTOK
from accounting.rates import ModelPrice as ModelPrice
from wire.usage import Usage

log = logging.getLogger("pointsman.accounting")

_ZERO = Decimal(0)
_CACHE_MAX = 10_000


class GpuHours:
    """What a self-hosted model's GPU time costs: ``usd`` per GPU hour on ``gpus`` GPUs (per endpoint)."""

    __slots__ = ("usd", "gpus", "source")

    usd: Final[Decimal]
    gpus: Final[int]
    source: Final[str]
    """``pricing`` (the model's ``accounting.pricing`` entry) or ``backend`` (the vLLM backend's)."""

    def __init__(
        self,
        usd: Decimal,
        gpus: int,
        source: str,
    ) -> None:
        self.usd = usd
        self.gpus = gpus
        self.source = source

    def per_token(self, tokens_per_s: float) -> Decimal:
        return self.usd * self.gpus / Decimal(3600) / Decimal(str(tokens_per_s))


def unpriced_message(model: str, self_hosted: bool) -> str:
    """The warning (and check-config line) for a model without a price: what to set."""
    how = (
        "input_per_mtok/output_per_mtok, or throughput_tokens_per_s with the backend's gpu_hour_usd"
        if self_hosted
        else "input_per_mtok/output_per_mtok, or a newer accounting.price_table that lists it"
    )
    kind = "self-hosted model" if self_hosted else "model"
    return (
        f"{kind} {model!r} has no price: set accounting.pricing[{model!r}] ({how}); until then its requests are "
        "recorded as unpriced (not $0 spend), flagged by pointsman_model_unpriced, and refused for keys with a "
        "dollar budget unless accounting.on_unpriced is allow"
    )


_STANDARD_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "input_cost_per_image_token",
    "output_cost_per_image_token",
)


def _explicit(o: ModelPriceConfig, base: ModelPrice | None) -> ModelPrice | None:
    """Apply per-mtok overrides on top of ``base``'s standard prices (an override is one flat price per class:
    the table's service-tier and long-context variants no longer apply). Without a base, a side not given
    takes the price of one that is (input, else output, else cached input): one price for every token type."""
    i, out, c = o.input_per_mtok, o.output_per_mtok, o.cached_input_per_mtok
    w, w1 = o.cache_write_per_mtok, o.cache_write_1h_per_mtok
    if i is None and out is None and c is None and w is None and w1 is None:
        return None
    if base is None:
        fill = next(v for v in (i, out, c, w, w1) if v is not None) / MTOK
        base = ModelPrice.flat(fill, fill, fill, "config")
    inp = i / MTOK if i is not None else base.input
    outp = out / MTOK if out is not None else base.output
    if c is not None:
        cached = c / MTOK
    elif i is not None and base.source == "table":
        cached = min(base.cached_input, inp)
    elif i is not None:
        cached = inp
    else:
        cached = base.cached_input
    rates = {k: base.rates[k] for k in _STANDARD_KEYS if k in base.rates}
    if out is not None:  # reasoning tokens are output tokens: an output price given is theirs too
        rates.pop("output_cost_per_reasoning_token", None)
    rates["input_cost_per_token"] = inp
    rates["output_cost_per_token"] = outp
    rates["cache_read_input_token_cost"] = cached
    if w is not None:
        rates["cache_creation_input_token_cost"] = w / MTOK
    if w1 is not None:
        rates["cache_creation_input_token_cost_above_1hr"] = w1 / MTOK
    return ModelPrice(rates, "config")


class Pricing:
    """Resolves (backend, upstream model) to a price. Built at startup and on config swaps."""

    def __init__(self, cfg: AccountingConfig, catalog: Catalog, table: PriceTable) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.table = table
        self._throughput: dict[str, float] = {}
        self._cache: dict[tuple[str, str, str | None], ModelPrice | None] = {}
        self._names: dict[tuple[str, str], str] = {}
        """(backend, upstream) -> the first configured model name serving it, for exact configured models."""
        self._exact = {n for n in catalog.models if not _is_glob(n)}
        """The configured models' exact names."""
        for m in catalog.models.values():
            if m.upstream_model is not None and not _is_glob(m.name):
                self._names.setdefault((m.backend, m.upstream_model), m.name)
            elif not _is_glob(m.name):
                self._names.setdefault((m.backend, m.name), m.name)
        self.unpriced: list[str] = []
        """Configured models (exact names, frontier and self-hosted) that resolve to no price."""
        self.self_hosted_prices: dict[str, ModelPrice] = {}
        """Configured self-hosted model name -> price (for ``pointsman_selfhosted_cost_per_mtok_usd``)."""
        self._scan()

    def _scan(self) -> None:
        self.unpriced = []
        self.self_hosted_prices = {}
        for m in self.catalog.models.values():
            if _is_glob(m.name) and m.upstream_model is None:
                continue  # names a glob lets through are flagged when first charged (Accountant.price)
            b = self.catalog.backends.get(m.backend)
            price = self._resolve(m.backend, m.upstream_model or m.name, m.name)
            if price is None:
                self.unpriced.append(m.name)
            elif b is not None and b.self_hosted:
                self.self_hosted_prices[m.name] = price

    def configured_name(self, backend: str, upstream: str) -> str:
        """The configured (exact) model name served as ``upstream`` by ``backend``; else ``upstream``."""
        return self._names.get((backend, upstream), upstream)

    def self_hosted(self, backend: str) -> bool:
        b = self.catalog.backends.get(backend)
        return b is not None and b.self_hosted

    def warn_unpriced(self) -> None:
        for name in self.unpriced:
            m = self.catalog.models.get(name)
            log.warning("%s", unpriced_message(name, m is not None and self.self_hosted(m.backend)))

    # -- request path ------------------------------------------------------------------------------------
    def lookup(self, backend: str, upstream_model: str, name: str | None = None) -> ModelPrice | None:
        """The price of ``upstream_model`` served by ``backend`` as the configured model ``name``: two configured
        models on one backend and upstream model each have their own ``accounting.pricing`` entry. A ``name`` that
        is not a configured model (one a glob let through) is priced by its upstream model alone; without a
        ``name``, as the first configured model with that backend and upstream model."""
        k = (backend, upstream_model, name)
        try:
            return self._cache[k]
        except KeyError:
            pass
        if name is None:
            name = self._names.get((backend, upstream_model))
        elif name not in self._exact:
            name = None
        price = self._resolve(backend, upstream_model, name)
        if len(self._cache) < _CACHE_MAX:
            self._cache[k] = price
        return price

    def cost(
        self, backend: str, upstream_model: str, usage: Usage, name: str | None = None
    ) -> tuple[Decimal, bool]:
        """(cost, priced)."""
        p = self.lookup(backend, upstream_model, name)
        if p is None:
            return _ZERO, False
        return p.cost(usage), True

    # -- resolution ----------------------------------------------------------------------------------------
    def _override(self, *names: str | None) -> ModelPriceConfig | None:
        for n in names:
            if n is not None:
                o = self.cfg.pricing.get(n)
                if o is not None:
                    return o
        return None

    def gpu_hours(self, backend: str, upstream: str, name: str | None) -> GpuHours | None:
        """The GPU-hour price of a self-hosted model: its pricing entry's, else its backend's (each of price
        and GPU count separately). None when neither gives a price."""
        facts = self.catalog.backends.get(backend)
        if facts is None:
            return None
        o = self._override(name, upstream, f"{backend}/{upstream}")
        usd = o.gpu_hour_usd if o is not None else None
        source = "pricing"
        if not usd:
            usd, source = facts.gpu_hour_usd, "backend"
        if not usd:
            return None
        gpus = (o.gpu_count if o is not None else None) or facts.gpu_count
        return GpuHours(usd, gpus, source)

    def model_gpu_hours(self, model: str) -> GpuHours | None:
        """``gpu_hours`` of a configured model (by its configured name)."""
        m = self.catalog.models.get(model)
        if m is None:
            return None
        return self.gpu_hours(m.backend, m.upstream_model or m.name, m.name)

    def origin(self, backend: str, upstream: str, name: str | None) -> str:
        """Where a served model's price comes from, in words (for the pricing report): the table entry, the
        ``accounting.pricing`` key, or the GPU-hour price and throughput. Empty when it has no price."""
        price = self._resolve(backend, upstream, name)
        if price is None:
            return ""
        facts = self.catalog.backends.get(backend)
        key = next(
            (n for n in (name, upstream, f"{backend}/{upstream}") if n is not None and n in self.cfg.pricing),
            None,
        )
        if price.source == "gpu":
            hours = self.gpu_hours(backend, upstream, name)
            measured = self._throughput.get(name or upstream) or self._throughput.get(upstream)
            tps = measured or (self.cfg.pricing[key].throughput_tokens_per_s if key else None)
            assert hours is not None and tps
            how = "measured" if measured else f"accounting.pricing[{key!r}].throughput_tokens_per_s"
            where = f"accounting.pricing[{key!r}]" if hours.source == "pricing" else f"backend {backend!r}"
            return f"GPU hours: ${hours.usd}/h x {hours.gpus} GPU(s) ({where}) / {tps:g} tokens/s per endpoint ({how})"
        entry = self.table.key_of(upstream, facts.provider if facts else None)
        if entry is None and name is not None and name != upstream:
            entry = self.table.key_of(name, facts.provider if facts else None)
        table = f"price table entry {entry!r}" if entry else ""
        if price.source == "config":
            return f"accounting.pricing[{key!r}]" + (f" over {table}" if table else "")
        return table

    def _resolve(self, backend: str, upstream: str, name: str | None) -> ModelPrice | None:
        facts = self.catalog.backends.get(backend)
        o = self._override(name, upstream, f"{backend}/{upstream}")
        if facts is not None and facts.self_hosted:
            if o is not None:
                explicit = _explicit(o, None)
                if explicit is not None:
                    return explicit
            hours = self.gpu_hours(backend, upstream, name)
            tps = self._throughput.get(name or upstream) or self._throughput.get(upstream)
            if tps is None and o is not None:
                tps = o.throughput_tokens_per_s
            if hours is None or not tps:
                return None
            per_token = hours.per_token(tps)
            return ModelPrice.flat(per_token, per_token, per_token, "gpu", per_token, per_token)
        base = self.table.get(upstream, facts.provider if facts else None)
        if base is None and name is not None and name != upstream:
            base = self.table.get(name, facts.provider if facts else None)
        if o is not None:
            explicit = _explicit(o, base)
            if explicit is not None:
                return explicit
        return base

    # -- measured throughput hook (vLLM /metrics) ------------------------------------------------------------
    @property
    def throughput(self) -> dict[str, float]:
        """Measured throughputs in force: model -> tokens per second."""
        return self._throughput

    def set_throughput(self, model: str, tokens_per_s: float) -> ModelPrice | None:
        """Record a measured throughput for a self-hosted model (configured name or upstream id) and reprice it.

        Returns the model's new price (None if still unpriced). Configured ``throughput_tokens_per_s`` is
        superseded by a measurement.
        """
        if tokens_per_s <= 0:
            return None
        self._throughput[model] = tokens_per_s
        self._cache.clear()
        self._scan()
        for m in self.catalog.models.values():
            if model in (m.name, m.upstream_model):
                return self.self_hosted_prices.get(m.name)
        return None


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")
