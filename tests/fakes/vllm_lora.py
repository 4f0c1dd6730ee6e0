"""A fake vLLM server for the default tier: the fake OpenAI upstream plus what vLLM adds around it.

- ``GET /v1/models``: the base model and the loaded LoRA adapters (``parent`` = base), like vLLM.
- ``POST /v1/load_lora_adapter`` / ``/v1/unload_lora_adapter`` with vLLM's answers (200 plain text; 400
  "already been loaded"; 404 for a path that does not exist or an unknown adapter); ``lora_disabled`` makes
  both answer 404 as a server without runtime LoRA updating does (the route does not exist).
- ``GET /metrics``: ``vllm:generation_tokens_total`` / ``vllm:prompt_tokens_total`` that the test sets or
  that grow with the served requests; running/waiting gauges.
- Chat/completions for the base model and loaded adapters only; anything else is vLLM's 404.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI


@dataclass
class FakeVLLMLora(FakeOpenAI):
    base: str = "base"
    adapters: dict[str, str] = field(default_factory=dict)
    """Loaded adapters: name -> path."""
    valid_paths: set[str] = field(default_factory=lambda: {"/adapters/a1", "/adapters/a2"})
    lora_disabled: bool = False
    metrics_status: int = 200
    generation_tokens: float = 0.0
    prompt_tokens: float = 0.0
    running: float = 0.0
    prompt_tokens_per_request: int = 11
    """Added to the prompt counter per chat request (generation grows by ``completion_tokens``)."""
    waiting: float = 0.0
    token_rates: tuple[float, float] | None = None
    """(generation, prompt) tokens per second added to the counters since ``rates_since`` (monotonic time),
    computed when /metrics is read."""
    rates_since: float = 0.0
    metrics_hits: int = 0
    load_calls: list[dict[str, Any]] = field(default_factory=list)
    unload_calls: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/load_lora_adapter", self.load_lora)
        app.router.add_post("/v1/unload_lora_adapter", self.unload_lora)
        app.router.add_get("/metrics", self.metrics)
        return app

    @staticmethod
    def _err(status: int, message: str, type_: str) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": type_, "param": None, "code": status}}, status=status
        )

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {
                "id": self.base,
                "object": "model",
                "owned_by": "vllm",
                "root": "/models/base",
                "parent": None,
                "max_model_len": 256,
            }
        ]
        data += [
            {
                "id": n,
                "object": "model",
                "owned_by": "vllm",
                "root": p,
                "parent": self.base,
                "max_model_len": None,
            }
            for n, p in self.adapters.items()
        ]
        return web.json_response({"object": "list", "data": data})

    async def load_lora(self, request: web.Request) -> web.Response:
        if self.lora_disabled:
            return web.json_response({"detail": "Not Found"}, status=404)
        body = orjson.loads(await request.read())
        self.load_calls.append(body)
        name, path = body.get("lora_name"), body.get("lora_path")
        if name in self.adapters and not body.get("load_inplace"):
            return self._err(
                400,
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        if path not in self.valid_paths:
            return self._err(404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError")
        self.adapters[str(name)] = str(path)
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora(self, request: web.Request) -> web.Response:
        if self.lora_disabled:
            return web.json_response({"detail": "Not Found"}, status=404)
        body = orjson.loads(await request.read())
        self.unload_calls.append(body)
        name = body.get("lora_name")
        if name not in self.adapters:
            return self._err(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.adapters[str(name)]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def metrics(self, request: web.Request) -> web.Response:
        self.metrics_hits += 1
        if self.metrics_status != 200:
            return web.Response(status=self.metrics_status, text="no")
        lab = f'engine="0",model_name="{self.base}"'
        gen, prompt = self.generation_tokens, self.prompt_tokens
        if self.token_rates is not None:
            el = time.monotonic() - self.rates_since
            gen += self.token_rates[0] * el
            prompt += self.token_rates[1] * el
        text = (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{{{lab}}} {self.running}\n"
            f"vllm:num_requests_waiting{{{lab}}} {self.waiting}\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{{{lab}}} {prompt}\n"
            f"vllm:prompt_tokens_created{{{lab}}} 1.7e9\n"
            "# TYPE vllm:generation_tokens_total counter\n"
            f"vllm:generation_tokens_total{{{lab}}} {gen}\n"
        )
        return web.Response(text=text, content_type="text/plain")

    def _served(self, model: str) -> bool:
        return model == self.base or model in self.adapters

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model", ""))
        if not self._served(model):
            return self._err(404, f"The model `{model}` does not exist.", "NotFoundError")
        self.prompt_tokens += self.prompt_tokens_per_request
        self.generation_tokens += self.completion_tokens
        return await super().chat(request)
