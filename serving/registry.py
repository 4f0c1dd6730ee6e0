"""Builds backends from config; the lifespan owns the registry (start/close)."""

from __future__ import annotations

from collections.abc import Mapping

from serving.config import BackendConfig, LiteLLMBackendConfig, SimulatedBackendConfig, VLLMBackendConfig
from serving.http_backend import DEFAULT_MAX_RESPONSE_BYTES, OpenAIHTTPBackend
from serving.litellm_backend import LiteLLMBackend
from serving.simulated.backend import SimulatedBackend
from serving.vllm.monitor import VLLMMonitor

AnyBackend = OpenAIHTTPBackend | LiteLLMBackend | SimulatedBackend


def build_backend(
    name: str, cfg: BackendConfig, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
) -> AnyBackend:
    if isinstance(cfg, LiteLLMBackendConfig):
        return LiteLLMBackend(name, cfg, max_response_bytes)
    if isinstance(cfg, SimulatedBackendConfig):
        return SimulatedBackend(name, cfg)
    return OpenAIHTTPBackend(name, cfg, max_response_bytes)


class BackendRegistry:
    """Live backends by name. Rebuilt only for changed backend configs on a policy swap.

    vLLM backends get a background ``VLLMMonitor`` (health + queue depth) for as long as they are live.
    """

    def __init__(self, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.max_response_bytes = max_response_bytes
        """The largest non-streamed answer an HTTP backend reads (``server.max_response_bytes``)."""
        self.backends: dict[str, AnyBackend] = {}
        self._configs: dict[str, BackendConfig] = {}
        self.monitors: dict[str, VLLMMonitor] = {}

    def __getitem__(self, name: str) -> AnyBackend:
        return self.backends[name]

    def get(self, name: str) -> AnyBackend | None:
        return self.backends.get(name)

    async def sync(self, configs: Mapping[str, BackendConfig]) -> list[AnyBackend]:
        """Make the live set match ``configs``; returns backends that were replaced (close them later)."""
        retired: list[AnyBackend] = []
        for name, cfg in configs.items():
            if self._configs.get(name) == cfg and name in self.backends:
                continue
            if name in self.backends:
                retired.append(self.backends[name])
                await self._stop_monitor(name)
            backend = build_backend(name, cfg, self.max_response_bytes)
            await backend.start()
            self.backends[name] = backend
            self._configs[name] = cfg
            if isinstance(cfg, VLLMBackendConfig) and isinstance(backend, OpenAIHTTPBackend):
                monitor = VLLMMonitor(backend, cfg.health_interval_s)
                monitor.start()
                self.monitors[name] = monitor
        for name in list(self.backends):
            if name not in configs:
                await self._stop_monitor(name)
                retired.append(self.backends.pop(name))
                self._configs.pop(name, None)
        return retired

    async def _stop_monitor(self, name: str) -> None:
        monitor = self.monitors.pop(name, None)
        if monitor is not None:
            await monitor.stop()

    async def close(self) -> None:
        for name in list(self.monitors):
            await self._stop_monitor(name)
        for b in self.backends.values():
            await b.close()
        self.backends.clear()
        self._configs.clear()
