"""Wiring between the gateway's config and the accountant (which may not import the layers above it).

``build_catalog`` turns the gateway config (and the live key ring) into the plain ``accounting.catalog``
facts; ``VLLMTokenCounter`` is the injected token counter backed by the vLLM servers' own ``/tokenize``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from accounting.accountant import Accountant
from accounting.catalog import BackendFacts, Catalog, ModelFacts
from accounting.price_table import PriceTable
from accounting.pricing import Pricing
from gateway.config import GatewayConfig
from gateway.keys import ClientKey
from routing.policy import DEFAULT_ROUTE
from serving.config import LiteLLMBackendConfig, SimulatedBackendConfig, VLLMBackendConfig

log = logging.getLogger("pointsman.accounting")

_GLOB = frozenset("*?[")


def _plain(v: str | None) -> str | None:
    return v if v and not _GLOB.intersection(v) else None


def _decimal(backend: str, gpu_hour_usd: str | None) -> Decimal | None:
    if not gpu_hour_usd:
        return None
    try:
        return Decimal(gpu_hour_usd)
    except InvalidOperation:
        log.warning("backend %r: gpu_hour_usd %r is not a decimal number; ignored", backend, gpu_hour_usd)
        return None


def build_catalog(cfg: GatewayConfig, keys: Iterable[ClientKey] = ()) -> Catalog:
    backends: dict[str, BackendFacts] = {}
    for name, b in cfg.backends.items():
        gpu_hour: Decimal | None = None
        gpus = 1
        endpoints: tuple[str, ...] = ()
        provider = None
        window, min_tokens = 300.0, 1000
        if isinstance(b, VLLMBackendConfig):
            window, min_tokens = b.throughput_window_s, b.throughput_min_tokens
            endpoints = tuple(b.endpoints)
            gpus = b.gpu_count
            gpu_hour = _decimal(name, b.gpu_hour_usd)
        elif isinstance(b, LiteLLMBackendConfig):
            provider = b.provider
        self_hosted = b.type == "vllm"
        if isinstance(b, SimulatedBackendConfig):
            self_hosted, gpus = b.self_hosted, b.gpu_count
            gpu_hour = _decimal(name, b.gpu_hour_usd)
        backends[name] = BackendFacts(
            name, b.type, self_hosted, provider, gpu_hour, gpus, endpoints, window, min_tokens
        )
    models = {
        n: ModelFacts(n, m.backend, m.adapter or m.upstream_model or (None if _GLOB.intersection(n) else n))
        for n, m in cfg.models.items()
    }
    all_keys = [ClientKey.from_config(k) for k in cfg.keys] + list(keys)
    tasks: set[str] = set()
    for r in cfg.routes:
        t = _plain(r.match.tags.get("task"))
        if t:
            tasks.add(t)
    for k in all_keys:
        t = _plain(k.tags.get("task"))
        if t:
            tasks.add(t)
        for v in (k.allowed_tags or {}).get("task", ()):
            if _plain(v):
                tasks.add(v)
    return Catalog(
        backends=backends,
        models=models,
        teams=frozenset(k.team for k in all_keys if k.team),
        keys=frozenset(k.name for k in all_keys),
        tasks=frozenset(tasks),
        routes=frozenset({DEFAULT_ROUTE, *(r.name for r in cfg.routes)}),
        redis_url=cfg.redis.url,
        on_unavailable=cfg.redis.on_unavailable,
        workers=cfg.server.workers,
    )


class VLLMTokenCounter:
    """Counts tokens with a vLLM server's own tokenizer: ``POST <server>/tokenize`` (its ``count`` field)."""

    def __init__(self, catalog: Catalog, timeout_s: float = 5.0) -> None:
        self.bases = {
            name: [e[: -len("/v1")] if e.endswith("/v1") else e for e in b.endpoints]
            for name, b in catalog.backends.items()
            if b.self_hosted and b.endpoints
        }
        self.timeout_s = timeout_s
        self.session: Any = None
        """An ``aiohttp.ClientSession``, made (and aiohttp imported) on first use: off the request path."""

    async def __call__(self, backend: str, model: str, payload: dict[str, Any]) -> int | None:
        bases = self.bases.get(backend)
        if not bases:
            return None
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        body = orjson.dumps({"model": model, **payload})
        for base in bases:
            try:
                async with self.session.post(
                    base + "/tokenize", data=body, headers={"content-type": "application/json"}
                ) as resp:
                    if resp.status != 200:
                        continue
                    doc = orjson.loads(await resp.read())
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                continue
            n = doc.get("count") if isinstance(doc, dict) else None
            if isinstance(n, int) and n >= 0:
                return n
            toks = doc.get("tokens") if isinstance(doc, dict) else None
            if isinstance(toks, list):
                return len(toks)
        return None

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def build_accountant(cfg: GatewayConfig) -> Accountant:
    catalog = build_catalog(cfg)
    counter = VLLMTokenCounter(catalog) if any(b.self_hosted for b in catalog.backends.values()) else None
    return Accountant(cfg.accounting, cfg.server.data_dir, catalog, counter)


def build_pricing(cfg: GatewayConfig) -> Pricing:
    """The prices a config gives (its price table, overrides, configured throughputs), outside a running
    gateway: ``check-config`` and ``pointsman pricing --config``. ValueError when the price table is unreadable."""
    return Pricing(cfg.accounting, build_catalog(cfg), PriceTable.load(cfg.accounting.price_table))
