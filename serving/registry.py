"""Builds backends from config; the lifespan owns the registry (start/close)."""

from __future__ import annotations

from collections.abc import Mapping

from serving.config import BackendConfig, LiteLLMBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from serving.litellm_backend import LiteLLMBackend

AnyBackend = OpenAIHTTPBackend | LiteLLMBackend


def build_backend(name: str, cfg: BackendConfig) -> AnyBackend:
    if isinstance(cfg, LiteLLMBackendConfig):
        return LiteLLMBackend(name, cfg)
    return OpenAIHTTPBackend(name, cfg)


class BackendRegistry:
    """Live backends by name. Rebuilt only for changed backend configs on a policy swap."""

    def __init__(self) -> None:
        self.backends: dict[str, AnyBackend] = {}
        self._configs: dict[str, BackendConfig] = {}

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
            backend = build_backend(name, cfg)
            await backend.start()
            self.backends[name] = backend
            self._configs[name] = cfg
        for name in list(self.backends):
            if name not in configs:
                retired.append(self.backends.pop(name))
                self._configs.pop(name, None)
        return retired

    async def close(self) -> None:
        for b in self.backends.values():
            await b.close()
        self.backends.clear()
        self._configs.clear()
