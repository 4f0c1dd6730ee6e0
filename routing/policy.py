"""Compiled routing rules: first match wins; a strategy picks among the healthy targets; fallbacks follow.

Rules compile once into plain objects when a policy is loaded (``routing.rules``); ``decide`` does no I/O. Backend health and
prices come in through two small interfaces the gateway injects: a ``HealthView`` (circuit breakers, vLLM
health, latency EWMAs; ``routing.health.HealthTracker``) and ``CostOf`` (a model's price, from accounting).

Choosing a target:
- ``weighted``: by weight, with a sticky key (``x-pointsman-sticky``, ``user`` or a tag) hashed into the
  weights so one key always lands on the same target, else random (seeded in tests). A chosen target whose
  backend is down is replaced by a weighted pick among the healthy ones, with the same draw, so keys whose
  target is up never move.
- ``least_latency``: the healthy target with the lowest latency EWMA (unmeasured ones first); a small
  fraction of decisions picks by weight so every target stays measured.
- ``cheapest``: the healthy target with the lowest price (unpriced ones last, ties in listed order).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from routing.config import RouteConfig
from routing.eligibility import NOT_APPROVED, ConsentRequired, Eligibility, OutOfScope
from routing.errors import ModelNotFound
from routing.models import ModelTable, ResolvedModel
from routing.rules import GLOB_CHARS, CompiledRule, RouteInput, first_match
from wire.route_defaults import NO_DEFAULTS

DEFAULT_ROUTE = "default"

CostOf = Callable[[ResolvedModel], Decimal | None]
"""A target's price (any comparable figure: the gateway gives USD per input + output token); None when
unpriced."""


class HealthView(Protocol):
    @property
    def latency(self) -> Mapping[str, float]:
        """Latency EWMA in seconds by target model name."""

    def is_up(self, backend_name: str) -> bool: ...


class Decision:
    """Where one request goes: the chosen target then its fallbacks, and how and why they were chosen."""

    __slots__ = (
        "route",
        "attempts",
        "reason",
        "timeout_s",
        "max_retries",
        "defaults",
        "candidates",
        "rule",
        "how",
        "eligibility",
        "removed",
    )

    route: str
    attempts: list[ResolvedModel]
    """Chosen target first, then fallbacks, in order."""
    reason: str
    timeout_s: float | None
    max_retries: int | None
    defaults: Mapping[str, Any]
    """The route's ``defaults`` as configured (``defaults_for`` gives them in an endpoint's form)."""
    candidates: Sequence[tuple[str, float]]
    rule: CompiledRule | None
    how: str
    """How the target was chosen: sticky, random, least_latency, cheapest, only, requested."""
    eligibility: Eligibility | None
    """The request's constraint on targets (a scoped key), when it has one."""
    removed: Sequence[tuple[str, str]]
    """Models the constraint took out of the rule's targets and fallbacks, with why."""

    def __init__(
        self,
        route: str,
        attempts: list[ResolvedModel],
        reason: str,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        defaults: Mapping[str, Any] | None = None,
        candidates: Sequence[tuple[str, float]] = (),
        rule: CompiledRule | None = None,
        how: str = "",
        eligibility: Eligibility | None = None,
        removed: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.route = route
        self.attempts = attempts
        self.reason = reason
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.defaults = {} if defaults is None else defaults
        self.candidates = candidates
        self.rule = rule
        self.how = how
        self.eligibility = eligibility
        self.removed = removed

    def defaults_for(self, endpoint: str) -> Mapping[str, Any]:
        """The route's defaults as a request of ``endpoint`` takes them (``wire.route_defaults``)."""
        rule = self.rule
        return rule.defaults.get(endpoint, NO_DEFAULTS) if rule is not None else NO_DEFAULTS


def kept_in_house(decision: Decision) -> bool:
    """Whether the lack of third-party consent took a target or fallback out of this decision (a re-route)."""
    return any(why == NOT_APPROVED for _, why in decision.removed)


def sticky_fraction(route: str, key: str) -> float:
    digest = hashlib.sha256(f"{route}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weighted_pick(weights: Sequence[float], total: float, u: float) -> int:
    """Index whose cumulative weight interval holds ``u * total`` (``u`` in [0, 1))."""
    x = u * total
    acc = 0.0
    last = 0
    for i, w in enumerate(weights):
        if w <= 0:
            continue
        acc += w
        last = i
        if x < acc:
            return i
    return last


def _decision(
    rule: CompiledRule,
    attempts: list[ResolvedModel],
    how: str,
    eligible: Eligibility | None = None,
    removed: Sequence[tuple[str, str]] = (),
) -> Decision:
    cfg = rule.cfg
    return Decision(
        rule.name,
        attempts,
        rule.reason,
        cfg.timeout_s,
        cfg.max_retries,
        cfg.defaults,
        rule.candidates,
        rule,
        how,
        eligible,
        removed,
    )


class Policy:
    """An immutable, compiled rule set plus the model table it routes to."""

    def __init__(
        self,
        routes: Sequence[RouteConfig],
        models: ModelTable,
        rng: random.Random | None = None,
        health: HealthView | None = None,
        cost_of: CostOf | None = None,
        explore: float = 0.05,
    ) -> None:
        self.models = models
        self.rules = [CompiledRule(r, models, i) for i, r in enumerate(routes)]
        self.by_name = {r.name: r for r in self.rules}
        # Index for first-match: a rule with an exact-valued tag (or else an exact model) can only match
        # requests carrying that value, so it is filed under it; the rest are always checked. Each list is in
        # rule order; the first match overall is the earliest first match among the lists a request selects.
        self._always: list[CompiledRule] = []
        self._by_tag: dict[str, dict[str, list[CompiledRule]]] = {}
        self._by_model: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            m = rule.cfg.match
            exact_tag = next(((k, v) for k, v in m.tags.items() if not GLOB_CHARS.intersection(v)), None)
            if exact_tag is not None:
                self._by_tag.setdefault(exact_tag[0], {}).setdefault(exact_tag[1], []).append(rule)
            elif m.model is not None and not GLOB_CHARS.intersection(m.model):
                self._by_model.setdefault(m.model, []).append(rule)
            else:
                self._always.append(rule)
        self.rng = rng or random.Random()
        self.health = health
        self.cost_of = cost_of
        self.explore = explore

    def resolve(self, name: str) -> ResolvedModel:
        m = self.models.resolve(name)
        if m is None:
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.")
        return m

    def match(self, inp: RouteInput) -> CompiledRule | None:
        """The first rule (in order) that matches."""
        best = first_match(self._always, inp, None)
        if self._by_tag:
            tags = inp.tags
            for key, table in self._by_tag.items():
                value = tags.get(key)
                if value is not None:
                    candidates = table.get(value)
                    if candidates:
                        best = first_match(candidates, inp, best)
        if self._by_model:
            candidates = self._by_model.get(inp.model)
            if candidates:
                best = first_match(candidates, inp, best)
        return best

    def decide(self, inp: RouteInput, eligible: Eligibility | None = None) -> Decision:
        """The target and fallbacks for ``inp``; with ``eligible`` (a scoped key, a team without third-party
        consent), only models it allows."""
        rule = self.match(inp)
        if eligible is not None:
            return self._decide_within(inp, rule, eligible)
        if rule is None:
            return Decision(
                DEFAULT_ROUTE, [self.resolve(inp.model)], "no rule matched: requested model", how="requested"
            )
        if rule.targets:
            idx, how = self._choose(rule, inp)
            chosen = rule.resolved[idx]
            if chosen is None:
                chosen = self.resolve(rule.targets[idx])
        else:
            chosen, how = self.resolve(inp.model), "requested"
        attempts = [chosen]
        for name, fb in zip(rule.fallbacks, rule.fallback_models, strict=True):
            if name != chosen.name:
                attempts.append(fb if fb is not None else self.resolve(name))
        return _decision(rule, attempts, how)

    def refusal(self, inp: RouteInput, eligible: Eligibility | None) -> OutOfScope | ConsentRequired | None:
        """The 403 ``decide(inp, eligible)`` would raise (``OutOfScope``, ``ConsentRequired``), or None when a
        model may serve ``inp``. The same filtering as ``decide``, without the choice among what is left: it
        draws nothing and reads no health (neither changes whether anything is left), so a listing may ask it
        for every model. Raises ``ModelNotFound`` as ``decide`` does."""
        if eligible is None:
            return None
        try:
            self._decide_within(inp, self.match(inp), eligible, choose=False)
        except (OutOfScope, ConsentRequired) as exc:
            return exc
        return None

    def _decide_within(
        self, inp: RouteInput, rule: CompiledRule | None, eligible: Eligibility, choose: bool = True
    ) -> Decision:
        """``decide`` for a constrained request: ineligible targets weigh nothing (the rest keep their relative
        shares), ineligible fallbacks are skipped; with nothing left, ``OutOfScope``. Without ``choose`` the
        first eligible target stands in for the strategy's pick (``refusal``)."""
        removed: list[tuple[str, str]] = []
        if rule is None:
            requested = self.resolve(inp.model)
            why = eligible.excluded(requested)
            if why is not None:
                raise eligible.refusal(DEFAULT_ROUTE, [(requested.name, why)])
            return Decision(
                DEFAULT_ROUTE,
                [requested],
                "no rule matched: requested model",
                how="requested",
                eligibility=eligible,
            )
        chosen: ResolvedModel | None = None
        how = "requested"
        if rule.targets:
            weights = list(rule.weights)
            for i, m in enumerate(rule.resolved):
                why = eligible.excluded(m) if m is not None else "unknown_model"
                if why is not None:
                    removed.append((rule.targets[i], why))
                    weights[i] = 0.0
            total = sum(weights)
            if total > 0:
                if choose:
                    idx, how = self._choose(rule, inp, weights, total)
                else:
                    idx = next(i for i, w in enumerate(weights) if w > 0)
                chosen = rule.resolved[idx]
            elif (
                rule.total <= 0
            ):  # every weight is 0: like an unconstrained decision, the first (eligible) one
                kept = {
                    i for i, m in enumerate(rule.resolved) if m is not None and eligible.excluded(m) is None
                }
                if kept:
                    chosen, how = rule.resolved[min(kept)], "only"
        else:
            requested = self.resolve(inp.model)
            why = eligible.excluded(requested)
            if why is None:
                chosen = requested
            else:
                removed.append((requested.name, why))
        attempts = [chosen] if chosen is not None else []
        for name, fb in zip(rule.fallbacks, rule.fallback_models, strict=True):
            if chosen is not None and name == chosen.name:
                continue
            why = eligible.excluded(fb) if fb is not None else "unknown_model"
            if why is not None:
                removed.append((name, why))
            elif fb is not None:
                attempts.append(fb)
        if not attempts:
            raise eligible.refusal(rule.name, removed)
        if chosen is None:
            how = "first eligible fallback"
        elif removed:
            consent = any(why == NOT_APPROVED for _, why in removed)
            how += (
                " (in-house only: third-party processing not approved)"
                if consent
                else " (within the key's scope)"
            )
        return _decision(rule, attempts, how, eligible, removed)

    # -- strategies ------------------------------------------------------------------------------------
    def _up(self, rule: CompiledRule) -> list[bool] | None:
        health = self.health
        if health is None:
            return None
        return [m is not None and health.is_up(m.backend) for m in rule.resolved]

    def _choose(
        self,
        rule: CompiledRule,
        inp: RouteInput,
        weights: Sequence[float] | None = None,
        total: float | None = None,
    ) -> tuple[int, str]:
        """Pick a target index by the rule's strategy; ``weights``/``total`` override the rule's (a constrained
        request's targets, ineligible ones weighing 0)."""
        if weights is None:
            weights = rule.weights
            total = rule.total
            if len(weights) == 1:
                return 0, "only"
        elif sum(1 for w in weights if w > 0) == 1:
            return next(i for i, w in enumerate(weights) if w > 0), "only"
        up = self._up(rule)
        strategy = rule.strategy
        if strategy != "weighted":
            eligible = [i for i, w in enumerate(weights) if w > 0 and (up is None or up[i])]
            if not eligible:
                eligible = [i for i, w in enumerate(weights) if w > 0]
            if strategy == "least_latency":
                if self.explore and self.rng.random() < self.explore:
                    ws = [w if i in eligible else 0.0 for i, w in enumerate(weights)]
                    return weighted_pick(ws, sum(ws), self.rng.random()), "least_latency (exploring)"
                lat = self.health.latency if self.health is not None else {}
                return min(eligible, key=lambda i: lat.get(rule.targets[i], 0.0)), "least_latency"
            cost_of = self.cost_of
            if cost_of is None:
                return eligible[0], "cheapest (no prices: first listed)"

            def price(i: int) -> tuple[bool, Decimal, int]:
                m = rule.resolved[i]
                c = cost_of(m) if m is not None else None
                return c is None, c if c is not None else Decimal(0), i

            return min(eligible, key=price), "cheapest"
        key = rule.sticky_key(inp)
        u = sticky_fraction(rule.name, key) if key else self.rng.random()
        how = "sticky" if key else "random"
        idx = weighted_pick(weights, total or 0.0, u)
        if up is not None and not up[idx]:
            ws = [w if up[i] else 0.0 for i, w in enumerate(weights)]
            total = sum(ws)
            if total > 0:
                return weighted_pick(ws, total, u), how + " (chosen target down)"
        return idx, how

    # -- explain ---------------------------------------------------------------------------------------
    def explain(self, inp: RouteInput, eligible: Eligibility | None = None) -> dict[str, Any]:
        """The decision for ``inp`` with what led to it; calls no model. With ``eligible`` (a scoped key, a team
        without third-party consent): the constraint, what it removed, or the refusal when nothing eligible is
        left."""
        try:
            d = self.decide(inp, eligible)
        except (OutOfScope, ConsentRequired) as exc:
            rule = self.match(inp)
            return {
                "route": rule.name if rule else DEFAULT_ROUTE,
                "rule_index": rule.index if rule else None,
                "refused": {"status": exc.status, "code": exc.code, "message": exc.message},
                "eligibility": eligible.describe() if eligible is not None else None,
                "tags": dict(inp.tags),
            }
        rule = d.rule
        out: dict[str, Any] = {
            "route": d.route,
            "rule_index": rule.index if rule else None,
            "reason": d.reason,
            "chosen": d.attempts[0].name,
            "chosen_by": d.how,
            "backend": d.attempts[0].backend,
            "upstream_model": d.attempts[0].upstream_model,
            "fallbacks": [m.name for m in d.attempts[1:]],
            "attempts": [
                {"model": m.name, "backend": m.backend, "upstream_model": m.upstream_model}
                for m in d.attempts
            ],
            "tags": dict(inp.tags),
            "timeout_s": d.timeout_s,
            "max_retries": d.max_retries,
            "defaults": dict(d.defaults),
            "eligibility": eligible.describe() if eligible is not None else None,
            "removed": [{"model": name, "why": why} for name, why in d.removed],
        }
        if rule is not None:
            out["strategy"] = rule.strategy
            out["sticky_key"] = rule.sticky_key(inp)
            up = self._up(rule)
            cands = []
            out_of_scope = {name for name, _ in d.removed}
            total = sum(w for name, w in rule.candidates if name not in out_of_scope)
            for i, (name, weight) in enumerate(rule.candidates):
                m = rule.resolved[i]
                share = 0.0 if name in out_of_scope or not total else weight / total
                c: dict[str, Any] = {
                    "model": name,
                    "weight": weight,
                    "backend": m.backend if m else None,
                    "share": share,
                }
                if eligible is not None:
                    c["eligible"] = name not in out_of_scope
                if up is not None:
                    c["up"] = up[i]
                if self.health is not None:
                    c["latency_ewma_s"] = self.health.latency.get(name)
                if self.cost_of is not None:
                    price = self.cost_of(m) if m is not None else None
                    c["price"] = None if price is None else str(price)
                cands.append(c)
            out["candidates"] = cands
        else:
            out["strategy"] = None
            out["sticky_key"] = None
            out["candidates"] = []
        return out
