"""Task tags from every source pick the rule (and so the backend) they name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import TEAM_KEY, chat, sdk, two_backend_config

ROUTES = [
    {"name": "summaries", "match": {"tags": {"task": "summarize"}}, "targets": [{"model": "m-secondary"}]},
    {"name": "gold-tier", "match": {"tags": {"tier": "gold"}}, "targets": [{"model": "m-secondary"}]},
]


@pytest.mark.parametrize(
    ("key", "kwargs"),
    [
        pytest.param("client", {"extra_headers": {"X-Pointsman-Task": "summarize"}}, id="task-header"),
        pytest.param("client", {"extra_headers": {"X-Pointsman-Tags": "team=a, task=summarize"}}, id="tags-header"),
        pytest.param("client", {"metadata": {"task": "summarize"}}, id="body-metadata"),
        pytest.param("team", {}, id="key-default-tags"),
    ],
)
def test_tag_from_each_source_routes_to_the_tagged_backend(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any, key: str, kwargs: dict[str, Any]
) -> None:
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=ROUTES))
    client = sdk(gw) if key == "client" else sdk(gw, TEAM_KEY)
    headers = chat(client, **kwargs)
    assert headers["x-pointsman-backend"] == "up2"
    assert headers["x-pointsman-route"] == "summaries"
    assert len(upstream2.requests) == 1 and not upstream.requests


def test_untagged_request_uses_the_requested_models_backend(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=ROUTES))
    headers = chat(sdk(gw))
    assert headers["x-pointsman-backend"] == "up"
    assert headers["x-pointsman-route"] == "default"


def test_task_header_overrides_the_keys_default_task(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=ROUTES))
    headers = chat(sdk(gw, TEAM_KEY), extra_headers={"X-Pointsman-Task": "chat"})
    assert headers["x-pointsman-backend"] == "up"


def test_any_tag_not_only_task_can_select_a_rule(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=ROUTES))
    headers = chat(sdk(gw), metadata={"tier": "gold"})
    assert headers["x-pointsman-route"] == "gold-tier"
    assert headers["x-pointsman-backend"] == "up2"


def test_rules_match_on_key_team_and_model_glob(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    routes = [{"name": "docs-team-gpt", "match": {"team": "docs", "model": "gpt-*"}, "targets": [{"model": "m-secondary"}]}]
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=routes))
    assert chat(sdk(gw, TEAM_KEY))["x-pointsman-backend"] == "up2"
    assert chat(sdk(gw))["x-pointsman-backend"] == "up"  # team search


def test_metadata_is_stripped_for_a_backend_that_rejects_it(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    cfg = two_backend_config(upstream, upstream2, routes=ROUTES)
    cfg["backends"]["up2"]["reject_metadata"] = True
    gw = gateway_factory(cfg)
    chat(sdk(gw), metadata={"task": "summarize", "trace": "t1"})
    assert "metadata" not in upstream2.requests[-1].body


def test_metadata_is_forwarded_to_a_backend_that_accepts_it(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(two_backend_config(upstream, upstream2, routes=ROUTES))
    chat(sdk(gw), metadata={"trace": "t1"})
    assert upstream.requests[-1].body["metadata"] == {"trace": "t1"}
