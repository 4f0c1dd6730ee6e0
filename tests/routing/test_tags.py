"""Task tags from every source pick the rule (and so the backend) they name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import TEAM_KEY, chat, sdk, two_backend_config

RESEARCH_KEY = "sk-test-research-0001"
ROUTES = [
    {"name": "summaries", "match": {"tags": {"task": "summarize"}}, "targets": [{"model": "m-secondary"}]},
    {"name": "gold-tier", "match": {"tags": {"tier": "gold"}}, "targets": [{"model": "m-secondary"}]},
    {
        "name": "research-gpt",
        "match": {"team": "research", "model": "gpt-*"},
        "targets": [{"model": "m-secondary"}],
    },
]


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    cfg = two_backend_config(*shared_upstreams, routes=ROUTES)
    cfg["keys"].append({"name": "research", "key": RESEARCH_KEY, "team": "research"})
    cfg["backends"]["strict"] = {
        "type": "openai",
        "base_url": shared_upstreams[1].url,
        "reject_metadata": True,
    }
    cfg["models"]["m-strict"] = {"backend": "strict"}
    with RunningGateway(cfg) as g:
        yield g


@pytest.mark.parametrize(
    ("key", "kwargs"),
    [
        pytest.param(CLIENT_KEY, {"extra_headers": {"X-Pointsman-Task": "summarize"}}, id="task-header"),
        pytest.param(
            CLIENT_KEY, {"extra_headers": {"X-Pointsman-Tags": "team=a, task=summarize"}}, id="tags-header"
        ),
        pytest.param(CLIENT_KEY, {"metadata": {"task": "summarize"}}, id="body-metadata"),
        pytest.param(TEAM_KEY, {}, id="key-default-tags"),
    ],
)
def test_tag_from_each_source_routes_to_the_tagged_backend(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI], key: str, kwargs: dict[str, Any]
) -> None:
    upstream, upstream2 = fresh
    headers = chat(sdk(gw, key), **kwargs)
    assert headers["x-pointsman-backend"] == "up2"
    assert headers["x-pointsman-route"] == "summaries"
    assert len(upstream2.requests) == 1 and not upstream.requests


def test_untagged_request_uses_the_requested_models_backend(gw: RunningGateway, fresh: Any) -> None:
    headers = chat(sdk(gw))
    assert headers["x-pointsman-backend"] == "up"
    assert headers["x-pointsman-route"] == "default"


def test_task_header_overrides_the_keys_default_task(gw: RunningGateway, fresh: Any) -> None:
    headers = chat(sdk(gw, TEAM_KEY), extra_headers={"X-Pointsman-Task": "chat"})
    assert headers["x-pointsman-backend"] == "up"


def test_task_header_overrides_body_metadata(gw: RunningGateway, fresh: Any) -> None:
    headers = chat(sdk(gw), metadata={"task": "chat"}, extra_headers={"X-Pointsman-Task": "summarize"})
    assert headers["x-pointsman-route"] == "summaries"


def test_any_tag_not_only_task_can_select_a_rule(gw: RunningGateway, fresh: Any) -> None:
    headers = chat(sdk(gw), metadata={"tier": "gold"})
    assert headers["x-pointsman-route"] == "gold-tier"
    assert headers["x-pointsman-backend"] == "up2"


def test_rules_match_on_key_team_and_model_glob(gw: RunningGateway, fresh: Any) -> None:
    assert chat(sdk(gw, RESEARCH_KEY))["x-pointsman-route"] == "research-gpt"
    assert chat(sdk(gw, RESEARCH_KEY), "alias")["x-pointsman-route"] == "default"  # model glob does not match
    assert chat(sdk(gw))["x-pointsman-route"] == "default"  # team search


def test_metadata_is_stripped_for_a_backend_that_rejects_it(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    chat(sdk(gw), "m-strict", metadata={"trace": "t1"})
    assert "metadata" not in fresh[1].requests[-1].body


def test_metadata_is_forwarded_to_a_backend_that_accepts_it(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    chat(sdk(gw), metadata={"trace": "t1"})
    assert fresh[0].requests[-1].body["metadata"] == {"trace": "t1"}
