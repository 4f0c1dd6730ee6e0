"""Third-party processing consent as policy (#19), over real sockets to a running gateway: a team without approval
is served only by in-house backends — targets, canary shares, fallbacks, retries, shadow candidates, judge and
embedding comparator calls — or refused with 403 ``third_party_processing_not_approved``; the third-party
upstream is a fake that records every body it receives, and none of that team's ever arrives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.consent.conftest import (
    ADMIN,
    APP,
    OTHER_KEY,
    SOLO_KEY,
    chat,
    consent_config,
    decide,
    metric,
    pair,
    reached,
)
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.reliability.probes import openai_error

ROUTES: list[dict[str, Any]] = [
    {"name": "away", "match": {"tags": {"task": "away"}}, "targets": [{"model": "gpt-x"}]},
    {
        "name": "canary",
        "match": {"tags": {"task": "canary"}},
        "targets": [{"model": "gpt-x", "weight": 95}, {"model": "llama-a", "weight": 5}],
    },
    {
        "name": "fallback",
        "match": {"tags": {"task": "fallback"}},
        "targets": [{"model": "house-fail"}],
        "fallbacks": ["gpt-x", "llama-b"],
        "max_retries": 4,
    },
    {
        "name": "fallback-away",
        "match": {"tags": {"task": "fallback-away"}},
        "targets": [{"model": "house-fail"}],
        "fallbacks": ["gpt-y"],
    },
    {
        "name": "shadow-out",
        "match": {"tags": {"task": "shadow-out"}},
        "targets": [{"model": "llama-a"}],
        "shadow": {"model": "gpt-x", "sample_rate": 1.0},
    },
    {
        "name": "judged-out",
        "match": {"tags": {"task": "judged-out"}},
        "targets": [{"model": "llama-a"}],
        "shadow": {
            "model": "llama-b",
            "sample_rate": 1.0,
            "compare": [{"type": "llm_judge", "model": "provider-judge"}],
        },
    },
    {
        "name": "embedded-out",
        "match": {"tags": {"task": "embedded-out"}},
        "targets": [{"model": "llama-a"}],
        "shadow": {
            "model": "llama-b",
            "sample_rate": 1.0,
            "compare": [{"type": "embedding_cosine", "model": "provider-embed"}],
        },
    },
    {
        "name": "judged-in",
        "match": {"tags": {"task": "judged-in"}},
        "targets": [{"model": "llama-a"}],
        "shadow": {
            "model": "llama-b",
            "sample_rate": 1.0,
            "compare": [
                {"type": "llm_judge", "model": "house-judge"},
                {"type": "embedding_cosine", "model": "house-embed"},
            ],
        },
    },
]


@pytest.fixture(scope="module")
def gw(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(consent_config(*upstreams, routes=ROUTES)) as g:
        yield g


@pytest.fixture
def provider(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[FakeOpenAI]:
    """The third-party fake, emptied before each test."""
    upstreams[1].requests.clear()
    yield upstreams[1]


def test_a_route_with_only_third_party_models_is_refused_saying_what_to_approve_and_where(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = chat(gw.url, "llama-a", "away")
    assert r.status_code == 403
    err = openai_error(r)
    assert (err["type"], err["code"]) == ("permission_error", "third_party_processing_not_approved")
    assert "team growth" in err["message"] and "/admin/teams/growth/consent" in err["message"]
    assert "pointsman consent approve growth" in err["message"]
    assert reached(provider) == []


def test_a_requested_third_party_model_without_a_route_is_refused(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = chat(gw.url, "gpt-y", stream=True)
    assert r.status_code == 403 and openai_error(r)["code"] == "third_party_processing_not_approved"
    assert reached(provider) == []


def test_a_canary_share_on_a_third_party_is_served_in_house(gw: RunningGateway, provider: FakeOpenAI) -> None:
    for i in range(8):
        r = chat(gw.url, "gpt-x", "canary", stream=i % 2 == 1, user=f"u{i}")
        assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "house"
    assert reached(provider) == []


def test_a_failing_in_house_target_falls_back_and_retries_only_in_house(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = chat(gw.url, "llama-a", "fallback")
    assert r.status_code == 200 and r.headers["x-pointsman-model"] == "llama-b"
    assert reached(provider) == []


def test_a_failing_in_house_target_with_only_a_third_party_fallback_fails_without_reaching_it(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = chat(gw.url, "llama-a", "fallback-away")
    assert r.status_code == 502
    assert reached(provider) == []


@pytest.mark.parametrize("task", ["shadow-out", "judged-out", "embedded-out"])
def test_a_shadow_that_would_reach_a_third_party_is_dropped_for_consent(
    gw: RunningGateway, provider: FakeOpenAI, task: str
) -> None:
    before = metric(gw.url, "pointsman_third_party_consent_total", team="growth", outcome="shadow_dropped")
    r = chat(gw.url, "llama-a", task)
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "house"
    p = pair(gw.url, r.headers["x-request-id"])
    assert (p["outcome"], p["reason"]) == ("dropped", "consent")
    after = metric(gw.url, "pointsman_third_party_consent_total", team="growth", outcome="shadow_dropped")
    assert after == before + 1
    assert metric(gw.url, "pointsman_shadow_dropped_total", route=task, reason="consent") >= 1
    report = httpx.get(
        gw.url + "/admin/shadow/report", headers=ADMIN, params={"route": task}, timeout=10
    ).json()
    assert report["routes"][0]["counts"]["dropped_for_consent"] >= 1
    assert reached(provider) == []


def test_a_shadow_judged_and_embedded_in_house_runs_for_an_unapproved_team(
    gw: RunningGateway, upstreams: tuple[FakeOpenAI, FakeOpenAI], provider: FakeOpenAI
) -> None:
    house = upstreams[0]
    n = len(house.requests)
    r = chat(gw.url, "llama-a", "judged-in")
    p = pair(gw.url, r.headers["x-request-id"])
    assert p["outcome"] != "dropped"
    models = {s.split()[1] for s in reached(house, n)}
    assert {"llama-a", "llama-b", "house-judge", "house-embed"} <= models
    assert reached(provider) == []


def test_the_same_route_serves_an_approved_team_from_the_third_party(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    decide(gw.url, "team", "search", True)
    r = chat(gw.url, "llama-a", "away", key=OTHER_KEY)
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "provider"
    assert reached(provider) == ["/v1/chat/completions gpt-x"]


def test_approving_a_team_lets_its_requests_reach_third_parties_and_revoking_stops_them(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    house, provider = upstreams
    with RunningGateway(consent_config(house, provider, routes=ROUTES)) as g:
        assert chat(g.url, "llama-a", "away").status_code == 403
        decide(g.url, "team", "growth", True)
        n = len(provider.requests)
        r = chat(g.url, "llama-a", "away")
        assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "provider"
        decide(g.url, "team", "growth", False)
        m = len(provider.requests)
        assert chat(g.url, "llama-a", "away").status_code == 403
        assert len(provider.requests) == m == n + 1


def test_a_keys_own_revocation_wins_over_its_teams_approval(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    house, provider = upstreams
    with RunningGateway(consent_config(house, provider, routes=ROUTES)) as g:
        decide(g.url, "team", "growth", True)
        out = decide(g.url, "key", "app", False)
        assert out["approved"] is False and out["decided_by"] == "key"
        n = len(provider.requests)
        r = chat(g.url, "llama-a", "away")
        assert r.status_code == 403 and "/admin/keys/app/consent" in openai_error(r)["message"]
        assert len(provider.requests) == n


def test_a_key_without_a_team_needs_its_own_approval(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    house, provider = upstreams
    with RunningGateway(consent_config(house, provider, routes=ROUTES)) as g:
        assert chat(g.url, "gpt-x", key=SOLO_KEY).status_code == 403
        decide(g.url, "key", "solo", True)
        assert chat(g.url, "gpt-x", key=SOLO_KEY).status_code == 200


def test_by_default_consent_is_not_required_until_a_team_is_revoked(
    upstreams: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    house, provider = upstreams
    cfg = consent_config(house, provider, routes=ROUTES)
    del cfg["consent"]
    with RunningGateway(cfg) as g:
        r = chat(g.url, "llama-a", "away")
        assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "provider"
        decide(g.url, "team", "growth", False)
        assert chat(g.url, "llama-a", "away").status_code == 403
        assert chat(g.url, "llama-a", "away", key=OTHER_KEY).status_code == 200


def test_refusals_and_reroutes_are_counted_per_team(gw: RunningGateway) -> None:
    def count(outcome: str) -> float:
        return metric(gw.url, "pointsman_third_party_consent_total", team="growth", outcome=outcome)

    refused, rerouted = count("refused"), count("rerouted")
    chat(gw.url, "llama-a", "away")
    chat(gw.url, "gpt-x", "canary")
    assert (count("refused"), count("rerouted")) == (refused + 1, rerouted + 1)


def test_explain_shows_the_consent_constraint_and_what_it_removed(gw: RunningGateway) -> None:
    r = httpx.post(
        gw.url + "/admin/routes/explain",
        headers=ADMIN,
        json={"body": {"model": "gpt-x"}, "headers": {"x-pointsman-task": "canary"}, "key": "app"},
        timeout=10,
    )
    out = r.json()
    assert out["third_party_consent"]["approved"] is False
    assert out["third_party_consent"]["third_party_backends"] == ["provider"]
    assert out["eligibility"]["third_party"]["team"] == "growth"
    assert out["removed"] == [{"model": "gpt-x", "why": "third_party_not_approved"}]
    assert out["chosen"] == "llama-a"
    refused = httpx.post(
        gw.url + "/admin/routes/explain",
        headers=ADMIN,
        json={"body": {"model": "gpt-x"}, "headers": {"x-pointsman-task": "away"}, "key": "app"},
        timeout=10,
    ).json()
    assert refused["refused"]["code"] == "third_party_processing_not_approved"


def _message(url: str, model: str, task: str | None = None) -> httpx.Response:
    headers = {"x-api-key": APP["authorization"].removeprefix("Bearer "), "anthropic-version": "2023-06-01"}
    if task is not None:
        headers["x-pointsman-task"] = task
    body = {
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Summarize account 4711."}],
    }
    return httpx.post(url + "/v1/messages", headers=headers, json=body, timeout=30)


def test_a_messages_request_of_an_unapproved_team_is_refused_in_anthropics_shape(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = _message(gw.url, "llama-a", "away")
    assert r.status_code == 403
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "permission_error"
    assert "/admin/teams/growth/consent" in doc["error"]["message"]
    assert reached(provider) == []


def test_a_messages_request_on_a_canary_route_is_served_in_house(
    gw: RunningGateway, provider: FakeOpenAI
) -> None:
    r = _message(gw.url, "gpt-x", "canary")
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "house"
    assert r.json()["type"] == "message"
    assert reached(provider) == []
