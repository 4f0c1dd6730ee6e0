"""The admin API changes routing live: validated like the config file, versioned, rolled back, atomic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import admin, chat, sdk, two_backend_config

EXISTING = [
    {"name": "summaries", "match": {"tags": {"task": "summarize"}}, "targets": [{"model": "m-secondary"}]}
]
NEW_RULE = {
    "name": "translations",
    "match": {"tags": {"task": "translate"}},
    "targets": [{"model": "m-secondary"}],
}


@pytest.fixture
def gw(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> Any:
    return gateway_factory(two_backend_config(upstream, upstream2, routes=EXISTING))


@pytest.fixture(scope="module")
def unchanged(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    """One gateway for the tests whose requests are all refused or read-only (its policy never changes)."""
    with RunningGateway(two_backend_config(*shared_upstreams, routes=EXISTING)) as g:
        yield g


def test_rule_created_through_the_admin_api_routes_the_next_request(gw: Any) -> None:
    client = sdk(gw)
    task = {"extra_headers": {"X-Pointsman-Task": "translate"}}
    assert chat(client, **task)["x-pointsman-backend"] == "up"
    r = admin(gw).post("/admin/routes", json=NEW_RULE)
    assert r.status_code == 201, r.text
    headers = chat(client, **task)
    assert headers["x-pointsman-backend"] == "up2"
    assert headers["x-pointsman-route"] == "translations"


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        pytest.param(
            {**NEW_RULE, "targets": [{"model": "m-secondary", "weight": -1}]},
            "routes[1].targets[0].weight",
            id="negative-weight",
        ),
        pytest.param(
            {**NEW_RULE, "targets": [{"model": "no-such-model"}]},
            "routes[1].targets[0].model",
            id="unknown-model",
        ),
        pytest.param(
            {**NEW_RULE, "fallbacks": ["m-primary", "nope"]}, "routes[1].fallbacks[1]", id="unknown-fallback"
        ),
        pytest.param({**NEW_RULE, "match": {"colour": "red"}}, "routes[1].match.colour", id="unknown-field"),
        pytest.param({**NEW_RULE, "strategy": "fastest"}, "routes[1].strategy", id="unknown-strategy"),
        pytest.param({**NEW_RULE, "sticky": "cookie"}, "routes[1].sticky", id="bad-sticky-source"),
        pytest.param({**NEW_RULE, "name": "has space"}, "routes[1].name", id="bad-name"),
        pytest.param({"match": {}}, "routes[1].name", id="missing-name"),
    ],
)
def test_invalid_rule_is_rejected_with_its_failing_path(
    unchanged: Any, rule: dict[str, Any], path: str
) -> None:
    r = admin(unchanged).post("/admin/routes", json=rule)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_policy"
    assert err["param"] == path
    assert path in [p["path"] for p in err["problems"]]
    assert admin(unchanged).get("/admin/routes").json()["version"] == 1  # nothing was stored


def test_rule_inserted_at_a_position_reports_that_index_in_errors(unchanged: Any) -> None:
    bad = {**NEW_RULE, "targets": [{"model": "m-secondary", "weight": "heavy"}]}
    r = admin(unchanged).post("/admin/routes", params={"position": 0}, json=bad)
    assert r.json()["error"]["param"] == "routes[0].targets[0].weight"


def test_duplicate_rule_name_is_a_conflict(unchanged: Any) -> None:
    r = admin(unchanged).post("/admin/routes", json={**NEW_RULE, "name": "summaries"})
    assert r.status_code == 409


def test_invalid_rule_in_a_full_replacement_names_its_index(unchanged: Any) -> None:
    routes = [NEW_RULE, {**NEW_RULE, "name": "other", "targets": [{"model": "m-secondary", "weight": -5}]}]
    r = admin(unchanged).put("/admin/routes", json={"routes": routes})
    assert r.json()["error"]["param"] == "routes[1].targets[0].weight"


def test_dry_run_validates_without_changing_anything(unchanged: Any) -> None:
    api = admin(unchanged)
    r = api.put("/admin/routes", params={"dry_run": "true"}, json={"routes": [NEW_RULE]})
    assert r.status_code == 200 and r.json()["dry_run"] is True
    assert [x["name"] for x in api.get("/admin/routes").json()["routes"]] == ["summaries"]


def test_update_and_delete_a_rule(gw: Any) -> None:
    api = admin(gw)
    client = sdk(gw)
    task = {"extra_headers": {"X-Pointsman-Task": "summarize"}}
    r = api.put("/admin/routes/summaries", json={**EXISTING[0], "targets": [{"model": "m-primary"}]})
    assert r.status_code == 200, r.text
    assert chat(client, **task)["x-pointsman-backend"] == "up"
    assert api.delete("/admin/routes/summaries").status_code == 200
    assert chat(client, **task)["x-pointsman-route"] == "default"
    assert api.get("/admin/routes/summaries").status_code == 404


def test_reorder_changes_which_rule_matches_first(gw: Any) -> None:
    api = admin(gw)
    api.post("/admin/routes", json={"name": "everything", "targets": [{"model": "m-primary"}]})
    client = sdk(gw)
    task = {"extra_headers": {"X-Pointsman-Task": "summarize"}}
    assert chat(client, **task)["x-pointsman-route"] == "summaries"
    assert api.post("/admin/routes/reorder", json={"order": ["everything", "summaries"]}).status_code == 200
    assert chat(client, **task)["x-pointsman-route"] == "everything"


def test_reorder_must_name_every_rule_once(unchanged: Any) -> None:
    r = admin(unchanged).post("/admin/routes/reorder", json={"order": ["summaries", "summaries"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "order"


def test_history_lists_every_version_and_rollback_restores_one(gw: Any) -> None:
    api = admin(gw)
    client = sdk(gw)
    api.post("/admin/routes", json=NEW_RULE)  # v2
    api.delete("/admin/routes/summaries")  # v3
    history = api.get("/admin/routes/history").json()
    assert [(h["version"], h["source"]) for h in history["history"]] == [
        (3, "admin"),
        (2, "admin"),
        (1, "config"),
    ]
    assert history["history"][0]["summary"] == "delete route summaries"
    assert history["history"][1]["routes"] == ["summaries", "translations"]
    r = api.post("/admin/routes/rollback", json={"version": 1})
    assert r.json() == {"version": 4, "rolled_back_to": 1, "routes": ["summaries"]}
    assert chat(client, extra_headers={"X-Pointsman-Task": "summarize"})["x-pointsman-route"] == "summaries"
    assert chat(client, extra_headers={"X-Pointsman-Task": "translate"})["x-pointsman-route"] == "default"
    assert api.get("/admin/routes/history").json()["history"][0]["source"] == "rollback"


def test_rollback_to_an_unknown_version_is_404(unchanged: Any) -> None:
    assert admin(unchanged).post("/admin/routes/rollback", json={"version": 99}).status_code == 404


def test_explain_returns_the_decision_without_calling_a_model(
    gw: Any, upstream: FakeOpenAI, upstream2: FakeOpenAI
) -> None:
    api = admin(gw)
    api.put(
        "/admin/routes",
        json={
            "routes": [
                {
                    "name": "canary",
                    "match": {"tags": {"task": "summarize"}},
                    "targets": [{"model": "m-primary", "weight": 95}, {"model": "m-secondary", "weight": 5}],
                    "fallbacks": ["gpt-4o-mini"],
                    "timeout_s": 20,
                }
            ]
        },
    )
    r = api.post(
        "/admin/routes/explain",
        json={
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
            "headers": {"X-Pointsman-Task": "summarize", "X-Pointsman-Sticky": "s1"},
        },
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["route"] == "canary" and d["rule_index"] == 0
    assert d["reason"] == "matched tag task=summarize"
    assert [(c["model"], c["weight"]) for c in d["candidates"]] == [("m-primary", 95), ("m-secondary", 5)]
    assert d["fallbacks"] == ["gpt-4o-mini"]
    assert d["chosen_by"] == "sticky" and d["sticky_key"] == "s1"
    assert d["timeout_s"] == 20
    assert not upstream.requests and not upstream2.requests


def test_explain_uses_the_named_keys_default_tags(unchanged: Any) -> None:
    r = admin(unchanged).post(
        "/admin/routes/explain", json={"body": {"model": "gpt-4o-mini"}, "key": "summarizer"}
    )
    assert r.json()["route"] == "summaries"
    assert r.json()["tags"] == {"task": "summarize"}


def test_an_explanation_without_its_body_names_the_missing_member(unchanged: Any) -> None:
    r = admin(unchanged).post("/admin/routes/explain", json={"key": "summarizer"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == ("body", "invalid_value") and err["message"].startswith("body: ")


def test_in_flight_request_finishes_on_the_policy_it_started_with(gw: Any, upstream2: FakeOpenAI) -> None:
    client = sdk(gw)
    upstream2.behaviors["gpt-4o-mini"] = "slow"  # 0.5 s
    result: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: result.update(h=chat(client, extra_headers={"X-Pointsman-Task": "summarize"}))
    )
    t.start()
    deadline = time.monotonic() + 2
    while not upstream2.requests and time.monotonic() < deadline:
        time.sleep(0.005)
    assert admin(gw).delete("/admin/routes/summaries").status_code == 200
    t.join()
    assert result["h"]["x-pointsman-route"] == "summaries"
    assert result["h"]["x-pointsman-backend"] == "up2"


def test_admin_api_refuses_client_keys(unchanged: Any) -> None:
    r = httpx.get(unchanged.url + "/admin/routes", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 403
