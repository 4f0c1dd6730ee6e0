"""First match wins, however rules are indexed: the compiled policy agrees with a plain in-order scan."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.config import RouteConfig
from routing.models import ModelTable
from routing.policy import Policy
from routing.rules import RouteInput
from serving.config import ModelConfig

MODELS = ModelTable(
    {"m": ModelConfig(backend="b"), "gpt-4o": ModelConfig(backend="b"), "gpt-mini": ModelConfig(backend="b")}
)
VALUES = st.sampled_from(["a", "b", "c", "a*", "*"])
MATCH = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["m", "gpt-4o", "gpt-*", "*"]),
        "tags": st.dictionaries(st.sampled_from(["task", "tier"]), VALUES, max_size=2),
        "team": st.sampled_from(["x", "y", "*"]),
    },
)
REQUEST = st.tuples(
    st.sampled_from(["m", "gpt-4o", "gpt-mini"]),
    st.dictionaries(
        st.sampled_from(["task", "tier", "other"]), st.sampled_from(["a", "b", "c", "ab"]), max_size=3
    ),
    st.sampled_from(["x", "y", None]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(MATCH, max_size=8), st.lists(REQUEST, min_size=1, max_size=5))
def test_indexed_match_is_the_first_rule_in_order(matches: list[dict[str, Any]], requests: list[Any]) -> None:
    policy = Policy([RouteConfig(name=f"r{i}", match=m) for i, m in enumerate(matches)], MODELS)
    for model, tags, team in requests:
        inp = RouteInput(model, tags, "key", team)
        expected = next((r for r in policy.rules if r.matches(inp)), None)
        assert policy.match(inp) is expected
