"""Routing rules as compiled: what a decision looks at (``RouteInput``), and each rule's match, targets,
fallbacks and strategy settings (``CompiledRule``), made once when a policy is loaded (``routing.policy``).

A rule's match values are exact or glob patterns (``*``, ``?``, ``[``); each compiles once into a matcher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase

from routing.config import RouteConfig
from routing.models import ModelTable
from wire.route_defaults import per_endpoint

GLOB_CHARS = frozenset("*?[")
"""A match value holding one of these is a glob pattern, else an exact value."""


class _Glob:
    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __call__(self, value: str | None) -> bool:
        return value is not None and fnmatchcase(value, self.pattern)


class _Exact:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, value: str | None) -> bool:
        return value == self.value


def _matcher(pattern: str | None) -> Callable[[str | None], bool] | None:
    if pattern is None:
        return None
    if GLOB_CHARS.intersection(pattern):
        return _Glob(pattern)
    return _Exact(pattern)


class RouteInput:
    """What a routing decision looks at (made per request)."""

    __slots__ = ("model", "tags", "key", "team", "sticky_header", "user")

    model: str
    tags: Mapping[str, str]
    key: str
    team: str | None
    sticky_header: str | None
    """``x-pointsman-sticky``."""
    user: str | None
    """The body's ``user`` field."""

    def __init__(
        self,
        model: str,
        tags: Mapping[str, str],
        key: str,
        team: str | None,
        sticky_header: str | None = None,
        user: str | None = None,
    ) -> None:
        self.model = model
        self.tags = tags
        self.key = key
        self.team = team
        self.sticky_header = sticky_header
        self.user = user


class CompiledRule:
    __slots__ = (
        "cfg",
        "name",
        "index",
        "_model",
        "_tags",
        "_key",
        "_team",
        "targets",
        "weights",
        "total",
        "resolved",
        "fallbacks",
        "fallback_models",
        "candidates",
        "strategy",
        "sticky_tag",
        "sticky_mode",
        "reason",
        "defaults",
    )

    def __init__(self, cfg: RouteConfig, models: ModelTable, index: int = 0) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.index = index
        m = cfg.match
        self._model = _matcher(m.model)
        self._tags = [(k, fn) for k, v in m.tags.items() if (fn := _matcher(v)) is not None]
        self._key = _matcher(m.key)
        self._team = _matcher(m.team)
        self.targets = [t.model for t in cfg.targets]
        self.weights = [t.weight for t in cfg.targets]
        self.total = sum(self.weights)
        self.resolved = [models.resolve(t) for t in self.targets]
        self.fallbacks = list(cfg.fallbacks)
        self.fallback_models = [models.resolve(f) for f in self.fallbacks]
        self.candidates = tuple(zip(self.targets, self.weights, strict=True))
        self.strategy = cfg.strategy
        sticky = cfg.sticky
        self.sticky_mode = "auto" if sticky is None else ("tag" if sticky.startswith("tag:") else sticky)
        self.sticky_tag = sticky[4:] if sticky and sticky.startswith("tag:") else ""
        self.reason = self.why()
        self.defaults = per_endpoint(cfg.defaults)
        """The route's ``defaults`` in each endpoint's form (``wire.route_defaults``)."""

    def matches(self, inp: RouteInput) -> bool:
        if self._model is not None and not self._model(inp.model):
            return False
        if self._tags:
            tags = inp.tags
            for k, fn in self._tags:
                if not fn(tags.get(k)):
                    return False
        if self._key is not None and not self._key(inp.key):
            return False
        return not (self._team is not None and not self._team(inp.team))

    def sticky_key(self, inp: RouteInput) -> str | None:
        mode = self.sticky_mode
        if mode == "auto":
            return inp.sticky_header or inp.user
        if mode == "tag":
            return inp.tags.get(self.sticky_tag) or None
        if mode == "user":
            return inp.user
        return inp.sticky_header

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


def first_match(
    rules: Sequence[CompiledRule], inp: RouteInput, best: CompiledRule | None
) -> CompiledRule | None:
    """The earlier of ``best`` and the first rule of ``rules`` (in rule order) that matches."""
    for rule in rules:
        if best is not None and rule.index >= best.index:
            return best
        if rule.matches(inp):
            return rule
    return best
