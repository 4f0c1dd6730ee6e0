"""A fake vLLM endpoint for routing tests: the fake OpenAI upstream plus ``/health`` and ``/metrics`` whose
answers the test sets (queue depth, health status)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI


@dataclass
class FakeVLLMEndpoint(FakeOpenAI):
    waiting: float = 0.0
    running: float = 0.0
    health_status: int = 200

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/metrics", self.metrics)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health_status, text="ok" if self.health_status == 200 else "down")

    async def metrics(self, request: web.Request) -> web.Response:
        text = (
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{engine="0",model_name="tiny"}} {self.waiting}\n'
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{engine="0",model_name="tiny"}} {self.running}\n'
        )
        return web.Response(text=text, content_type="text/plain")
