"""Model names clients send -> backend + upstream model id (exact names first, then globs in order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Final

from serving.config import ModelConfig

_GLOB_CHARS = frozenset("*?[")


class ResolvedModel:
    """A model name resolved: the backend that serves it and the model id sent upstream."""

    __slots__ = ("name", "backend", "upstream_model", "adapter", "owned_by")

    name: Final[str]
    """The name the client (or a rule) asked for."""
    backend: Final[str]
    upstream_model: Final[str]
    adapter: Final[str | None]
    owned_by: Final[str]

    def __init__(
        self, name: str, backend: str, upstream_model: str, adapter: str | None, owned_by: str
    ) -> None:
        self.name = name
        self.backend = backend
        self.upstream_model = upstream_model
        self.adapter = adapter
        self.owned_by = owned_by


class ModelTable:
    def __init__(self, models: Mapping[str, ModelConfig]) -> None:
        self.exact: dict[str, ResolvedModel] = {}
        self.globs: list[tuple[str, ModelConfig]] = []
        for name, m in models.items():
            if _GLOB_CHARS.intersection(name):
                self.globs.append((name, m))
            else:
                self.exact[name] = ResolvedModel(
                    name, m.backend, m.adapter or m.upstream_model or name, m.adapter, m.owned_by
                )
        self._cache: dict[str, ResolvedModel | None] = {}

    def resolve(self, name: str) -> ResolvedModel | None:
        hit = self.exact.get(name)
        if hit is not None:
            return hit
        if not self.globs:
            return None
        if name in self._cache:
            return self._cache[name]
        found: ResolvedModel | None = None
        for pat, m in self.globs:
            if fnmatchcase(name, pat):
                found = ResolvedModel(
                    name, m.backend, m.adapter or m.upstream_model or name, m.adapter, m.owned_by
                )
                break
        if len(self._cache) < 10_000:  # bounded: scanners must not grow memory
            self._cache[name] = found
        return found

    def listed(self) -> list[ResolvedModel]:
        return list(self.exact.values())

    @property
    def glob_backends(self) -> list[str]:
        """Backends that glob entries route to (whose own model lists say what the globs stand for)."""
        return list(dict.fromkeys(m.backend for _, m in self.globs))

    def listing(self, served: Mapping[str, Iterable[str]]) -> list[ResolvedModel]:
        """Every model a client may name: the exact entries, then each id a backend serves (``served``: its own
        model list) that a glob entry routes to that same backend, sorted. An id an earlier entry claims for
        another backend is not listed under this one."""
        out = self.listed()
        found: dict[str, ResolvedModel] = {}
        for backend, ids in served.items():
            for model_id in ids:
                if model_id in self.exact or model_id in found:
                    continue
                m = self.resolve(model_id)
                if m is not None and m.backend == backend:
                    found[model_id] = m
        return out + [found[k] for k in sorted(found)]
