"""A scoped key's constraint on routing (``routing.eligibility``): whatever rule matches, every model a decision
may call (chosen target, fallbacks, and so retries) lies within the key's scope, or the request is refused."""

from __future__ import annotations

import random
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.config import RouteConfig
from routing.eligibility import KEY_SCOPE, Eligibility, OutOfScope
from routing.models import ModelTable
from routing.policy import Policy
from routing.rules import RouteInput
from serving.config import ModelConfig

NAMES = ["gpt-a", "gpt-b", "claude-x", "llama-y"]
MODELS = ModelTable({n: ModelConfig(backend=f"b-{n}") for n in NAMES})
GPT = Eligibility("scoped", ("gpt-*",))


def policy(*routes: dict[str, Any], seed: int = 7) -> Policy:
    return Policy([RouteConfig(**r) for r in routes], MODELS, rng=random.Random(seed))


def test_a_model_matching_one_of_the_globs_is_eligible() -> None:
    assert GPT.excluded(MODELS.resolve("gpt-b")) is None  # type: ignore[arg-type]


def test_a_model_matching_none_of_the_globs_is_excluded_by_the_key_scope() -> None:
    assert GPT.excluded(MODELS.resolve("claude-x")) == KEY_SCOPE  # type: ignore[arg-type]


def test_a_tag_route_to_another_model_uses_its_in_scope_targets() -> None:
    p = policy(
        {
            "name": "summ",
            "match": {"tags": {"task": "s"}},
            "targets": [{"model": "claude-x", "weight": 99}, {"model": "gpt-b", "weight": 1}],
        }
    )
    for i in range(20):
        d = p.decide(RouteInput("gpt-a", {"task": "s"}, "scoped", None, f"sticky-{i}"), GPT)
        assert [m.name for m in d.attempts] == ["gpt-b"]
        assert list(d.removed) == [("claude-x", KEY_SCOPE)]


def test_out_of_scope_fallbacks_are_dropped_and_in_scope_ones_kept_in_order() -> None:
    p = policy(
        {
            "name": "r",
            "match": {"model": "gpt-a"},
            "targets": [],
            "fallbacks": ["claude-x", "gpt-b", "llama-y"],
        }
    )
    d = p.decide(RouteInput("gpt-a", {}, "scoped", None), GPT)
    assert [m.name for m in d.attempts] == ["gpt-a", "gpt-b"]


def test_a_route_with_nothing_in_scope_is_refused_naming_the_keys_scope() -> None:
    p = policy({"name": "away", "match": {"tags": {"task": "s"}}, "targets": [{"model": "claude-x"}]})
    with pytest.raises(OutOfScope) as exc:
        p.decide(RouteInput("gpt-a", {"task": "s"}, "scoped", None), GPT)
    assert exc.value.status == 403
    assert "gpt-*" in exc.value.message and "claude-x" in exc.value.message


def test_when_no_target_is_in_scope_the_first_in_scope_fallback_serves() -> None:
    p = policy(
        {"name": "r", "match": {"model": "gpt-a"}, "targets": [{"model": "claude-x"}], "fallbacks": ["gpt-b"]}
    )
    d = p.decide(RouteInput("gpt-a", {}, "scoped", None), GPT)
    assert [m.name for m in d.attempts] == ["gpt-b"]


def test_an_unconstrained_decision_is_unchanged() -> None:
    p = policy({"name": "away", "match": {"tags": {"task": "s"}}, "targets": [{"model": "claude-x"}]})
    d = p.decide(RouteInput("gpt-a", {"task": "s"}, "app", None))
    assert [m.name for m in d.attempts] == ["claude-x"] and d.eligibility is None and not d.removed


def test_explain_shows_the_constraint_and_what_it_removed() -> None:
    p = policy(
        {
            "name": "r",
            "match": {"model": "gpt-a"},
            "targets": [{"model": "claude-x", "weight": 3}, {"model": "gpt-b", "weight": 1}],
        }
    )
    out = p.explain(RouteInput("gpt-a", {}, "scoped", None), GPT)
    assert out["eligibility"] == {"key": "scoped", "models": ["gpt-*"]}
    assert out["removed"] == [{"model": "claude-x", "why": KEY_SCOPE}]
    assert [(c["model"], c["share"], c["eligible"]) for c in out["candidates"]] == [
        ("claude-x", 0.0, False),
        ("gpt-b", 1.0, True),
    ]


def test_explain_shows_a_refusal_instead_of_raising() -> None:
    p = policy({"name": "away", "match": {"model": "gpt-a"}, "targets": [{"model": "llama-y"}]})
    out = p.explain(RouteInput("gpt-a", {}, "scoped", None), GPT)
    assert out["route"] == "away" and out["refused"]["code"] == "model_not_in_key_scope"


# -- the class, not only the instance: generated rules, keys and requests ---------------------------------------
TARGET = st.fixed_dictionaries({"model": st.sampled_from(NAMES), "weight": st.sampled_from([0.0, 1.0, 5.0])})
ROUTE = st.fixed_dictionaries(
    {
        "match": st.fixed_dictionaries(
            {},
            optional={
                "model": st.sampled_from([*NAMES, "gpt-*", "*"]),
                "tags": st.dictionaries(st.just("task"), st.sampled_from(["a", "b", "*"]), max_size=1),
            },
        ),
        "targets": st.lists(TARGET, max_size=3, unique_by=lambda t: t["model"]),
        "fallbacks": st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
        "strategy": st.sampled_from(["weighted", "least_latency", "cheapest"]),
        "max_retries": st.none() | st.integers(0, 3),
    }
)
SCOPE = st.lists(st.sampled_from(["gpt-*", "claude-*", "llama-y", "*-x", "nothing"]), min_size=1, max_size=3)
REQUEST = st.tuples(
    st.sampled_from(NAMES), st.dictionaries(st.just("task"), st.sampled_from(["a", "b", "c"]), max_size=1)
)


def _in(scope: list[str], name: str) -> bool:
    return any(fnmatchcase(name, g) for g in scope)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUTE, max_size=5), SCOPE, st.lists(REQUEST, min_size=1, max_size=4), st.integers(0, 99))
def test_every_model_a_decision_may_call_is_within_the_keys_scope(
    routes: list[dict[str, Any]], scope: list[str], requests: list[Any], seed: int
) -> None:
    p = policy(*({"name": f"r{i}", **r} for i, r in enumerate(routes)), seed=seed)
    eligible = Eligibility("k", tuple(scope))
    for model, tags in requests:
        inp = RouteInput(model, tags, "k", None)
        rule = p.match(inp)
        try:
            d = p.decide(inp, eligible)
        except OutOfScope:
            # refused only when the rule offers nothing in scope
            assert rule is None or not any(_in(scope, t.model) and t.weight > 0 for t in rule.cfg.targets), (
                "refused although a weighted target is in scope"
            )
            assert rule is None or not any(_in(scope, f) for f in rule.fallbacks)
            if rule is None or not rule.targets:
                assert not _in(scope, model)
            continue
        assert d.attempts
        assert all(_in(scope, m.name) for m in d.attempts), [m.name for m in d.attempts]
        if rule is not None:  # nothing in scope was dropped
            chosen = d.attempts[0].name
            kept = [f for f in rule.fallbacks if _in(scope, f) and f != chosen]
            assert [m.name for m in d.attempts[1:]] == kept
