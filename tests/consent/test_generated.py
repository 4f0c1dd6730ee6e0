"""The class, not only the instances: generated route, fallback, retry, shadow and comparator configs, installed
on a running gateway through the admin API, and requests of a team without third-party consent on every route
(streamed or not). Whatever the config, nothing of that team reaches the third-party fake — every body it
receives is recorded — and every answer is in-house, a consent refusal, or an in-house failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.consent.conftest import (
    HOUSE_MODELS,
    PROVIDER_MODELS,
    chat,
    consent_config,
    put_routes,
    reached,
    shadows_done,
)
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.reliability.probes import openai_error

SERVING = ["llama-a", "llama-b", "house-fail", "gpt-x", "gpt-y"]
JUDGES = ["house-judge", "provider-judge"]
EMBEDDERS = ["house-embed", "provider-embed"]

TARGET = st.fixed_dictionaries(
    {"model": st.sampled_from(SERVING), "weight": st.sampled_from([0.0, 1.0, 5.0])}
)
COMPARATOR = st.one_of(
    st.just({"type": "json_valid"}),
    st.builds(lambda m: {"type": "llm_judge", "model": m}, st.sampled_from(JUDGES)),
    st.builds(lambda m: {"type": "embedding_cosine", "model": m}, st.sampled_from(EMBEDDERS)),
)
SHADOW = st.none() | st.fixed_dictionaries(
    {
        "model": st.sampled_from(SERVING),
        "sample_rate": st.just(1.0),
        "compare": st.lists(COMPARATOR, max_size=2, unique_by=lambda c: c["type"]),
    }
)
ROUTE = st.fixed_dictionaries(
    {
        "targets": st.lists(TARGET, max_size=3, unique_by=lambda t: t["model"]).filter(
            lambda ts: not ts or any(t["weight"] > 0 for t in ts)
        ),
        "fallbacks": st.lists(st.sampled_from(SERVING), max_size=3, unique=True),
        "strategy": st.sampled_from(["weighted", "least_latency", "cheapest"]),
        "max_retries": st.none() | st.integers(0, 3),
        "shadow": SHADOW,
        "by_model": st.none() | st.sampled_from([*SERVING, *JUDGES, *EMBEDDERS]),
    }
)


def install(url: str, generated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    routes = []
    for i, g in enumerate(generated):
        r: dict[str, Any] = {
            "name": f"r{i}",
            "match": {"model": g["by_model"]} if g["by_model"] else {"tags": {"task": f"r{i}"}},
            "targets": g["targets"],
            "fallbacks": g["fallbacks"],
            "strategy": g["strategy"],
        }
        if g["max_retries"] is not None:
            r["max_retries"] = g["max_retries"]
        if g["shadow"] is not None:
            r["shadow"] = g["shadow"]
        routes.append(r)
    put_routes(url, routes)
    return routes


@pytest.fixture(scope="module")
def gw(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(consent_config(*upstreams)) as g:
        yield g


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(ROUTE, min_size=1, max_size=3),
    st.lists(
        st.tuples(st.sampled_from([*HOUSE_MODELS, *PROVIDER_MODELS]), st.booleans()), min_size=3, max_size=3
    ),
)
def test_whatever_the_routes_fallbacks_shadows_or_comparators_nothing_of_an_unapproved_team_reaches_a_third_party(
    gw: RunningGateway,
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
    generated: list[dict[str, Any]],
    requests: list[tuple[str, bool]],
) -> None:
    provider = upstreams[1]
    routes = install(gw.url, generated)
    seen = len(provider.requests)
    for i, route in enumerate(routes):
        model, stream = requests[i % len(requests)]
        task = route["match"].get("tags", {}).get("task")
        r = chat(gw.url, route["match"].get("model") or model, task, stream=stream)
        if r.status_code == 403:
            assert openai_error(r)["code"] == "third_party_processing_not_approved"
        elif r.status_code == 200:
            assert r.headers["x-pointsman-backend"] == "house"
        else:
            assert r.status_code == 502, (
                r.text
            )  # an in-house target that fails, with no in-house way around it
    shadows_done(gw.url)  # every shadow, judge and embedding call made about these requests is over
    assert reached(provider, seen) == []
