"""Compiled routing rules: first match wins; weighted (sticky or random) choice of target; fallbacks.

Rules compile once into plain objects when a policy is loaded; ``decide`` does no I/O and no allocation
beyond the decision itself.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from routing.config import RouteConfig
from routing.errors import ModelNotFound
from routing.models import ModelTable, ResolvedModel

_GLOB_CHARS = frozenset("*?[")
DEFAULT_ROUTE = "default"


def _matcher(pattern: str | None) -> Any:
    if pattern is None:
        return None
    if _GLOB_CHARS.intersection(pattern):
        return lambda v: v is not None and fnmatchcase(v, pattern)
    return lambda v: v == pattern


@dataclass(frozen=True, slots=True)
class RouteInput:
    model: str
    tags: Mapping[str, str]
    key: str
    team: str | None
    sticky: str | None = None


@dataclass(slots=True)
class Decision:
    route: str
    attempts: list[ResolvedModel]
    """Chosen target first, then fallbacks, in order."""
    reason: str
    timeout_s: float | None = None
    max_retries: int | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    candidates: list[tuple[str, float]] = field(default_factory=list)
    rule: CompiledRule | None = None


class CompiledRule:
    __slots__ = ("cfg", "name", "_model", "_tags", "_key", "_team", "targets", "weights", "total", "fallbacks")

    def __init__(self, cfg: RouteConfig, models: ModelTable) -> None:
        self.cfg = cfg
        self.name = cfg.name
        m = cfg.match
        self._model = _matcher(m.model)
        self._tags = [(k, _matcher(v)) for k, v in m.tags.items()]
        self._key = _matcher(m.key)
        self._team = _matcher(m.team)
        self.targets = [t.model for t in cfg.targets]
        self.weights = [t.weight for t in cfg.targets]
        self.total = sum(self.weights)
        self.fallbacks = list(cfg.fallbacks)

    def matches(self, inp: RouteInput) -> bool:
        if self._model is not None and not self._model(inp.model):
            return False
        for k, fn in self._tags:
            if not fn(inp.tags.get(k)):
                return False
        if self._key is not None and not self._key(inp.key):
            return False
        return not (self._team is not None and not self._team(inp.team))

    def why(self) -> str:
        m = self.cfg.match
        parts = []
        if m.model:
            parts.append(f"model={m.model}")
        parts.extend(f"tag {k}={v}" for k, v in m.tags.items())
        if m.key:
            parts.append(f"key={m.key}")
        if m.team:
            parts.append(f"team={m.team}")
        return "matched " + (", ".join(parts) if parts else "everything")


def sticky_fraction(route: str, key: str) -> float:
    digest = hashlib.sha256(f"{route}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weighted_pick(names: Sequence[str], weights: Sequence[float], total: float, u: float) -> int:
    x = u * total
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if x < acc:
            return i
    return len(names) - 1


class Policy:
    """An immutable, compiled rule set plus the model table it routes to."""

    def __init__(self, routes: Sequence[RouteConfig], models: ModelTable, rng: random.Random | None = None) -> None:
        self.models = models
        self.rules = [CompiledRule(r, models) for r in routes]
        self.by_name = {r.name: r for r in self.rules}
        self.rng = rng or random.Random()

    def resolve(self, name: str) -> ResolvedModel:
        m = self.models.resolve(name)
        if m is None:
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.")
        return m

    def match(self, inp: RouteInput) -> CompiledRule | None:
        for rule in self.rules:
            if rule.matches(inp):
                return rule
        return None

    def decide(self, inp: RouteInput) -> Decision:
        rule = self.match(inp)
        if rule is None:
            return Decision(DEFAULT_ROUTE, [self.resolve(inp.model)], "no rule matched: requested model")
        if rule.targets:
            u = sticky_fraction(rule.name, inp.sticky) if inp.sticky else self.rng.random()
            idx = weighted_pick(rule.targets, rule.weights, rule.total, u)
            chosen = rule.targets[idx]
        else:
            chosen = inp.model
        names = [chosen, *(f for f in rule.fallbacks if f != chosen)]
        attempts = [self.resolve(n) for n in names]
        cfg = rule.cfg
        return Decision(
            rule.name,
            attempts,
            rule.why(),
            cfg.timeout_s,
            cfg.max_retries,
            cfg.defaults,
            [(t, w) for t, w in zip(rule.targets, rule.weights, strict=True)],
            rule,
        )
