"""A promotion's reverse shadow (the baseline, called for a sample of candidate-served requests) obeys consent:
while an in-house candidate is promoted over a third-party baseline, the requests of a team without third-party
consent are served in-house and never reverse-shadowed to the baseline; an approved team's are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.consent.conftest import ADMIN, OTHER_KEY, chat, consent_config, decide, pair, reached, shadows_done
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.reliability.probes import wait_for

ROUTES = [
    {
        "name": "promo",
        "match": {"tags": {"task": "promo"}},
        "targets": [{"model": "gpt-x"}],
        "shadow": {
            "model": "llama-b",
            "sample_rate": 1.0,
            "promotion": {"steps": [100.0], "dwell_requests": 1_000_000, "reverse_sample_rate": 1.0},
        },
    }
]


@pytest.fixture
def gw(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(consent_config(*upstreams, routes=ROUTES)) as g:
        yield g


def promoted(gw: RunningGateway) -> dict[str, Any]:
    r = httpx.post(gw.url + "/admin/routes/promo/promote", headers=ADMIN, json={"force": True}, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(
        lambda: (
            httpx.get(gw.url + "/admin/shadow/status", headers=ADMIN, timeout=10)
            .json()["promotions"]
            .get("promo")
        )
    )
    out: dict[str, Any] = r.json()
    return out


def test_an_unapproved_teams_request_is_not_reverse_shadowed_to_a_third_party_baseline(
    gw: RunningGateway, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    provider = upstreams[1]
    decide(gw.url, "team", "search", True)
    promoted(gw)
    seen = len(provider.requests)
    r = chat(gw.url, "llama-a", "promo")  # team growth: not approved
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "house"
    p = pair(gw.url, r.headers["x-request-id"])
    assert (p["direction"], p["outcome"], p["reason"]) == ("reverse", "dropped", "consent")
    shadows_done(gw.url)
    assert reached(provider, seen) == []
    approved = chat(gw.url, "llama-a", "promo", key=OTHER_KEY)  # team search: approved
    assert approved.headers["x-pointsman-backend"] == "house"  # the candidate serves it at 100%
    assert pair(gw.url, approved.headers["x-request-id"])["direction"] == "reverse"
    shadows_done(gw.url)
    assert reached(provider, seen) == ["/v1/chat/completions gpt-x"]
