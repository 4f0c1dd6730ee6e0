"""A model-scoped key stays in its scope through routing (#15): tag routes, canary shares and fallbacks to models
outside it never serve it, over real sockets to a running gateway; an upstream outside the scope is a fake that
records every body it receives, and none ever arrives. The generated test drives the class (any tag channel,
any route, failing or not), not one instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.reliability.conftest import SCOPED_KEY
from tests.reliability.probes import ADMIN, MSG, openai_error

SCOPED = {"authorization": f"Bearer {SCOPED_KEY}"}
TASKS = ["away", "mixed", "canary", "none"]


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    inside, outside = FakeOpenAI(name="in-scope").start(), FakeOpenAI(name="outside").start()
    yield inside, outside
    inside.stop()
    outside.stop()


@pytest.fixture(scope="module")
def gw(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    inside, outside = fakes
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "backends": {
            "in": {"type": "openai", "base_url": inside.url},
            "out": {"type": "openai", "base_url": outside.url},
        },
        "models": {
            "gpt-4o-mini": {"backend": "in"},
            "gpt-b": {"backend": "in", "upstream_model": "gpt-b"},
            "gpt-fail": {"backend": "in", "upstream_model": "fake-fail_503"},
            "gpt-fail-mixed": {"backend": "in", "upstream_model": "fake-fail_503"},
            "claude-x": {"backend": "out", "upstream_model": "claude-x"},
        },
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "search"},
            {"name": "scoped", "key": SCOPED_KEY, "team": "batch", "models": ["gpt-*"]},
        ],
        "routes": [
            {"name": "away", "match": {"tags": {"task": "away"}}, "targets": [{"model": "claude-x"}]},
            {
                "name": "mixed",
                "match": {"tags": {"task": "mixed"}},
                "targets": [{"model": "claude-x", "weight": 99}, {"model": "gpt-b", "weight": 1}],
            },
            {
                "name": "canary",
                "match": {"tags": {"task": "canary"}},
                "targets": [{"model": "gpt-4o-mini", "weight": 50}, {"model": "claude-x", "weight": 50}],
            },
            {"name": "fb-away", "match": {"model": "gpt-fail"}, "targets": [], "fallbacks": ["claude-x"]},
            {
                "name": "fb-mixed",
                "match": {"model": "gpt-fail-mixed"},
                "targets": [],
                "fallbacks": ["claude-x", "gpt-b"],
                "max_retries": 3,
            },
        ],
        "routing": {
            "breaker": {"consecutive_failures": 10_000},
            "backoff": {"base_s": 0.001, "max_s": 0.01},
        },
    }
    with RunningGateway(cfg) as g:
        yield g


def post(
    gw: RunningGateway, model: str, task: str | None = None, where: str = "header", **kw: Any
) -> httpx.Response:
    headers = dict(SCOPED)
    body: dict[str, Any] = {"model": model, "messages": MSG, **kw}
    if task is not None:
        if where == "header":
            headers["x-pointsman-task"] = task
        elif where == "tags-header":
            headers["x-pointsman-tags"] = f"task={task}"
        else:
            body["metadata"] = {"task": task}
    return httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=body, timeout=20)


@pytest.mark.parametrize("where", ["header", "tags-header", "metadata"])
def test_a_tag_route_to_a_model_outside_the_scope_is_refused_naming_the_scope(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI], where: str
) -> None:
    r = post(gw, "gpt-4o-mini", "away", where)
    assert r.status_code == 403
    err = openai_error(r)
    assert err["type"] == "permission_error" and err["code"] == "model_not_in_key_scope"
    assert "gpt-*" in err["message"]
    assert not fakes[1].requests


def test_a_tag_route_uses_its_in_scope_targets_whatever_their_share(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    for _ in range(5):
        r = post(gw, "gpt-4o-mini", "mixed")
        assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "in"
    assert not fakes[1].requests


def test_a_canary_share_outside_the_scope_is_never_served(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    for _ in range(10):
        assert post(gw, "gpt-4o-mini", "canary").headers["x-pointsman-backend"] == "in"
    assert not fakes[1].requests


def test_a_failing_model_does_not_fall_back_outside_the_scope(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    r = post(gw, "gpt-fail")
    assert r.status_code == 502
    assert not fakes[1].requests


def test_a_failing_model_falls_back_to_the_in_scope_fallback(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    r = post(gw, "gpt-fail-mixed", stream=True)
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "in"
    assert not fakes[1].requests


def test_an_unscoped_key_still_follows_the_route(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    before = len(fakes[1].requests)
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-pointsman-task": "away"},
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=20,
    )
    assert r.status_code == 200 and r.headers["x-pointsman-backend"] == "out"
    assert len(fakes[1].requests) == before + 1
    fakes[1].requests.clear()


def test_explain_as_the_scoped_key_shows_the_constraint_and_what_it_removed(gw: RunningGateway) -> None:
    r = httpx.post(
        gw.url + "/admin/routes/explain",
        headers=ADMIN,
        json={"body": {"model": "gpt-4o-mini"}, "headers": {"x-pointsman-task": "mixed"}, "key": "scoped"},
        timeout=10,
    )
    out = r.json()
    assert out["eligibility"] == {"key": "scoped", "models": ["gpt-*"]}
    assert out["removed"] == [{"model": "claude-x", "why": "key_scope"}]
    assert out["chosen"] == "gpt-b"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["gpt-4o-mini", "gpt-b", "gpt-fail", "gpt-fail-mixed", "claude-x"]),
    st.none() | st.sampled_from(TASKS),
    st.sampled_from(["header", "tags-header", "metadata"]),
    st.booleans(),
)
def test_whatever_the_route_tag_channel_or_failure_nothing_of_a_scoped_key_leaves_its_scope(
    gw: RunningGateway,
    fakes: tuple[FakeOpenAI, FakeOpenAI],
    model: str,
    task: str | None,
    where: str,
    stream: bool,
) -> None:
    r = post(gw, model, task, where, stream=stream)
    assert r.status_code in (200, 403, 502), r.text
    if r.status_code == 200:
        assert r.headers["x-pointsman-backend"] == "in"
    assert not fakes[1].requests
