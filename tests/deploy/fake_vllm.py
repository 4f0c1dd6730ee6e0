"""A fake vLLM server: the OpenAI endpoints of the fake upstream plus vLLM's /metrics, /tokenize, /v1/models.

Its /metrics exposes the vllm:* families the fleet dashboard reads, moved by the requests it serves
(tokens, TTFT and end-to-end histograms, running/waiting gauges, KV-cache use).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.fakes.openai_upstream import FakeOpenAI


@dataclass
class FakeVLLM(FakeOpenAI):
    served: tuple[str, ...] = ("llama",)
    # model -> "every Nth request fails with 500" (a flaky candidate)
    fail_every: dict[str, int] = field(default_factory=dict)
    # model -> seconds before answering (a slower candidate fills the shadow queue)
    slow_models: dict[str, float] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        self.m_waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=self.registry)
        self.m_running = Gauge("vllm:num_requests_running", "running", labels, registry=self.registry)
        self.m_kv = Gauge(
            "vllm:kv_cache_usage_perc", "kv cache use (1 = 100%)", labels, registry=self.registry
        )
        self.m_prompt = Counter("vllm:prompt_tokens", "prompt tokens", labels, registry=self.registry)
        self.m_gen = Counter("vllm:generation_tokens", "generation tokens", labels, registry=self.registry)
        buckets = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
        self.m_ttft = Histogram(
            "vllm:time_to_first_token_seconds", "ttft", labels, buckets=buckets, registry=self.registry
        )
        self.m_e2e = Histogram(
            "vllm:e2e_request_latency_seconds", "e2e", labels, buckets=buckets, registry=self.registry
        )
        for m in self.served:
            for g in (self.m_waiting, self.m_running, self.m_kv):
                g.labels(m, "0").set(0)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/tokenize", self.tokenize)
        return app

    def behavior(self, model: str) -> str:
        every = self.fail_every.get(model)
        if every:
            n = self._counts[model] = self._counts.get(model, 0) + 1
            if n % every == 0:
                return "fail_500"
        return super().behavior(model)

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "vllm", "root": m, "parent": None}
            for m in self.served
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()  # aiohttp caches the body: the parent handler reads it again
        model = str(body.get("model", ""))
        # served name for the metrics; a LoRA adapter is accounted under its base in vLLM's own metrics
        name = model if model in self.served else self.served[0]
        started = time.perf_counter()
        self.m_running.labels(name, "0").inc()
        self.m_waiting.labels(name, "0").set(random.randint(0, 3))
        self.m_kv.labels(name, "0").set(round(random.uniform(0.05, 0.6), 3))
        try:
            delay = self.slow_models.get(model)
            if delay:
                await asyncio.sleep(delay)
            self.m_ttft.labels(name, "0").observe(time.perf_counter() - started + 0.02)
            resp = await super().chat(request)
            if resp.status < 400:
                self.m_prompt.labels(name, "0").inc(self.prompt_tokens)
                self.m_gen.labels(name, "0").inc(self.completion_tokens)
            return resp
        finally:
            self.m_running.labels(name, "0").dec()
            self.m_e2e.labels(name, "0").observe(time.perf_counter() - started + 0.05)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain", charset="utf-8")

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        text = body.get("prompt") or " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        tokens = list(range(max(1, len(str(text).split()))))
        return web.json_response({"count": len(tokens), "tokens": tokens, "max_model_len": 4096})
