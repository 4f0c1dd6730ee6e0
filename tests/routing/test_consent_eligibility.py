"""Third-party consent as a routing constraint (``routing.eligibility``): for a team (or key) without approval,
every model a decision may call (chosen target, fallbacks, and so retries) is served by an in-house backend, or
the request is refused with ``third_party_processing_not_approved``; combined with a key scope, both hold."""

from __future__ import annotations

import random
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.approvals.store import KEY, TEAM, THIRD_PARTY
from routing.config import RouteConfig
from routing.eligibility import (
    KEY_SCOPE,
    NOT_APPROVED,
    ConsentRequired,
    Eligibility,
    OutOfScope,
    ThirdPartyConsent,
)
from routing.models import ModelTable
from routing.policy import Policy, kept_in_house
from routing.rules import RouteInput
from serving.config import ModelConfig

HOUSE = {"llama-a": "vllm", "llama-b": "vllm", "sim-c": "sim"}
PROVIDER = {"gpt-x": "openai", "claude-y": "anthropic"}
NAMES = [*HOUSE, *PROVIDER]
MODELS = ModelTable({n: ModelConfig(backend=b) for n, b in {**HOUSE, **PROVIDER}.items()})
THIRD = frozenset({"openai", "anthropic"})
IN_HOUSE = Eligibility("app", None, THIRD, (TEAM, "growth"))


class Recorded:
    """Recorded decisions, as ``ApprovalBook`` holds them."""

    def __init__(self, decisions: dict[tuple[str, str], bool], known: bool = True) -> None:
        self.decisions = decisions
        self.known = known

    def decided(self, purpose: str, scope: str, name: str | None) -> bool | None:
        assert purpose == THIRD_PARTY
        return None if name is None else self.decisions.get((scope, name))


def policy(*routes: dict[str, Any], seed: int = 7) -> Policy:
    return Policy([RouteConfig(**r) for r in routes], MODELS, rng=random.Random(seed))


def test_a_model_on_a_third_party_backend_is_excluded_for_lack_of_consent() -> None:
    assert IN_HOUSE.excluded(MODELS.resolve("gpt-x")) == NOT_APPROVED  # type: ignore[arg-type]
    assert IN_HOUSE.excluded(MODELS.resolve("llama-a")) is None  # type: ignore[arg-type]


def test_the_key_scope_is_checked_before_consent() -> None:
    both = Eligibility("app", ("llama-*",), THIRD, (TEAM, "growth"))
    assert both.excluded(MODELS.resolve("sim-c")) == KEY_SCOPE  # type: ignore[arg-type]
    assert both.excluded(MODELS.resolve("gpt-x")) == KEY_SCOPE  # type: ignore[arg-type]


def test_a_route_to_a_provider_with_an_in_house_share_serves_the_in_house_target() -> None:
    p = policy(
        {
            "name": "mixed",
            "match": {"tags": {"task": "s"}},
            "targets": [{"model": "gpt-x", "weight": 99}, {"model": "llama-a", "weight": 1}],
            "fallbacks": ["claude-y", "llama-b"],
        }
    )
    for i in range(10):
        d = p.decide(RouteInput("gpt-x", {"task": "s"}, "app", "growth", f"s{i}"), IN_HOUSE)
        assert [m.name for m in d.attempts] == ["llama-a", "llama-b"]
        assert kept_in_house(d) and "in-house only" in d.how


def test_a_route_with_only_provider_models_is_refused_saying_what_to_approve_and_where() -> None:
    p = policy({"name": "away", "match": {"model": "gpt-x"}, "targets": [], "fallbacks": ["claude-y"]})
    with pytest.raises(ConsentRequired) as exc:
        p.decide(RouteInput("gpt-x", {}, "app", "growth"), IN_HOUSE)
    e = exc.value
    assert (e.status, e.type, e.code) == (403, "permission_error", "third_party_processing_not_approved")
    assert "team growth" in e.message and "PUT /admin/teams/growth/consent" in e.message
    assert "pointsman consent approve growth" in e.message and "gpt-x" in e.message


def test_a_refusal_for_a_key_without_consent_names_the_key_endpoint() -> None:
    key_only = Eligibility("batch", None, THIRD, (KEY, "batch"))
    with pytest.raises(ConsentRequired) as exc:
        policy().decide(RouteInput("gpt-x", {}, "batch", None), key_only)
    assert "PUT /admin/keys/batch/consent" in exc.value.message


def test_out_of_scope_alone_is_still_the_scope_refusal() -> None:
    both = Eligibility("app", ("claude-*",), THIRD, (TEAM, "growth"))
    with pytest.raises(OutOfScope):
        policy().decide(RouteInput("llama-a", {}, "app", "growth"), both)


def test_explain_shows_the_consent_constraint_and_the_removed_models() -> None:
    p = policy(
        {
            "name": "r",
            "match": {"model": "gpt-x"},
            "targets": [{"model": "gpt-x", "weight": 3}, {"model": "llama-a", "weight": 1}],
        }
    )
    out = p.explain(RouteInput("gpt-x", {}, "app", "growth"), IN_HOUSE)
    tp = out["eligibility"]["third_party"]
    assert tp["approved"] is False and tp["team"] == "growth"
    assert tp["excluded_backends"] == ["anthropic", "openai"]
    assert out["removed"] == [{"model": "gpt-x", "why": NOT_APPROVED}]
    assert out["chosen"] == "llama-a"


def test_explain_shows_the_consent_refusal_instead_of_raising() -> None:
    out = policy().explain(RouteInput("claude-y", {}, "app", "growth"), IN_HOUSE)
    assert out["refused"]["code"] == "third_party_processing_not_approved"


# -- where the decision comes from ------------------------------------------------------------------------------
def test_with_nothing_recorded_the_default_decides() -> None:
    view = Recorded({})
    assert ThirdPartyConsent(THIRD, False, view).decision("app", "growth") == (True, "default")
    assert ThirdPartyConsent(THIRD, True, view).decision("app", "growth") == (False, "default")


def test_a_teams_decision_wins_over_the_default() -> None:
    view = Recorded({(TEAM, "growth"): False})
    assert ThirdPartyConsent(THIRD, False, view).decision("app", "growth") == (False, TEAM)


def test_a_keys_own_decision_wins_over_its_teams() -> None:
    view = Recorded({(TEAM, "growth"): True, (KEY, "app"): False})
    consent = ThirdPartyConsent(THIRD, False, view)
    assert consent.decision("app", "growth") == (False, KEY)
    e = consent.eligibility("app", "growth", None)
    assert e is not None and e.subject == (KEY, "app") and e.third_party == THIRD


def test_until_approvals_are_read_nobody_is_approved() -> None:
    consent = ThirdPartyConsent(THIRD, False, Recorded({(TEAM, "growth"): True}, known=False))
    assert consent.decision("app", "growth") == (False, "unknown")


def test_until_approvals_are_read_the_not_required_default_may_still_apply() -> None:
    unread = Recorded({}, known=False)
    assert ThirdPartyConsent(THIRD, False, unread, unknown_approves=True).decision("app", "t") == (
        True,
        "unknown",
    )
    assert ThirdPartyConsent(THIRD, True, unread, unknown_approves=True).decision("app", "t") == (
        False,
        "unknown",
    )


def test_an_approved_key_keeps_its_own_scope_object() -> None:
    scope = Eligibility("app", ("llama-*",))
    consent = ThirdPartyConsent(THIRD, True, Recorded({(TEAM, "growth"): True}))
    assert consent.eligibility("app", "growth", scope) is scope
    assert consent.eligibility("app", "growth", None) is None


def test_without_third_party_backends_nothing_is_constrained() -> None:
    consent = ThirdPartyConsent(frozenset(), True, Recorded({}))
    assert consent.eligibility("app", "growth", None) is None


def test_an_unapproved_scoped_key_keeps_its_scope_and_gains_the_in_house_rule() -> None:
    scope = Eligibility("app", ("llama-*",))
    e = ThirdPartyConsent(THIRD, True, Recorded({})).eligibility("app", "growth", scope)
    assert e is not None and e.models == ("llama-*",) and e.third_party == THIRD
    assert e.in_house() == Eligibility("app", None, THIRD, (TEAM, "growth"))


# -- the class, not only the instance: generated rules, scopes and requests -----------------------------------
TARGET = st.fixed_dictionaries({"model": st.sampled_from(NAMES), "weight": st.sampled_from([0.0, 1.0, 5.0])})
ROUTE = st.fixed_dictionaries(
    {
        "match": st.fixed_dictionaries(
            {},
            optional={
                "model": st.sampled_from([*NAMES, "llama-*", "*"]),
                "tags": st.dictionaries(st.just("task"), st.sampled_from(["a", "b", "*"]), max_size=1),
            },
        ),
        "targets": st.lists(TARGET, max_size=3, unique_by=lambda t: t["model"]),
        "fallbacks": st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
        "strategy": st.sampled_from(["weighted", "least_latency", "cheapest"]),
        "max_retries": st.none() | st.integers(0, 3),
    }
)
REQUEST = st.tuples(
    st.sampled_from(NAMES), st.dictionaries(st.just("task"), st.sampled_from(["a", "b", "c"]), max_size=1)
)
SCOPE = st.none() | st.lists(st.sampled_from(["llama-*", "gpt-*", "*-c", "*"]), min_size=1, max_size=2)


def _in_house(name: str) -> bool:
    return name in HOUSE


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUTE, max_size=5), SCOPE, st.lists(REQUEST, min_size=1, max_size=4), st.integers(0, 99))
def test_every_model_a_decision_for_an_unapproved_team_may_call_is_in_house(
    routes: list[dict[str, Any]], scope: list[str] | None, requests: list[Any], seed: int
) -> None:
    p = policy(*({"name": f"r{i}", **r} for i, r in enumerate(routes)), seed=seed)
    eligible = Eligibility("k", tuple(scope) if scope is not None else None, THIRD, (TEAM, "growth"))

    def allowed(name: str) -> bool:
        return _in_house(name) and (scope is None or any(fnmatchcase(name, g) for g in scope))

    for model, tags in requests:
        inp = RouteInput(model, tags, "k", "growth")
        rule = p.match(inp)
        try:
            d = p.decide(inp, eligible)
        except (ConsentRequired, OutOfScope) as exc:
            if rule is not None:  # refused only when the rule offers nothing allowed
                assert not any(allowed(t.model) and t.weight > 0 for t in rule.cfg.targets)
                assert not any(allowed(f) for f in rule.fallbacks)
            if rule is None or not rule.targets:
                assert not allowed(model)
            if isinstance(exc, OutOfScope):  # consent took nothing out: every candidate was outside the scope
                assert scope is not None
            continue
        assert d.attempts
        assert all(allowed(m.name) for m in d.attempts), [m.name for m in d.attempts]
        assert all(m.backend not in THIRD for m in d.attempts)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUTE, max_size=5), SCOPE, st.booleans(), st.lists(REQUEST, min_size=1, max_size=4))
def test_refusal_names_exactly_the_requests_decide_refuses_and_draws_nothing(
    routes: list[dict[str, Any]], scope: list[str] | None, approved: bool, requests: list[Any]
) -> None:
    p = policy(*({"name": f"r{i}", **r} for i, r in enumerate(routes)))
    globs = tuple(scope) if scope is not None else None
    eligible = Eligibility("k", globs) if approved else Eligibility("k", globs, THIRD, (TEAM, "growth"))
    for model, tags in requests:
        inp = RouteInput(model, tags, "k", "growth")
        state = p.rng.getstate()
        refusal = p.refusal(inp, eligible)
        assert p.rng.getstate() == state
        try:
            p.decide(inp, eligible)
        except (ConsentRequired, OutOfScope) as exc:
            assert refusal is not None and (type(refusal), refusal.message) == (type(exc), exc.message)
        else:
            assert refusal is None


def test_an_unconstrained_request_is_never_refused() -> None:
    p = policy({"name": "away", "match": {"model": "llama-a"}, "targets": [{"model": "gpt-x"}]})
    assert p.refusal(RouteInput("llama-a", {}, "app", "growth"), None) is None
