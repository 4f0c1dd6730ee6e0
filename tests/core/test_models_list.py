"""``/v1/models``: exact names, and for glob entries the upstream's own model list filtered by the glob —
fetched in the background, cached, refreshed — filtered by the key's scope and by what its requests' routes may
use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway.config import defaults_from_env
from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

SCOPED_KEY = "sk-test-scoped-models-01"
NARROW_KEY = "sk-test-scoped-models-02"


def config(upstream_url: str, **server: Any) -> dict[str, Any]:
    return {
        "server": server,
        "backends": {
            "up": {"type": "openai", "base_url": upstream_url},
            "down": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 0.5},
        },
        "models": {
            "alias": {"backend": "up", "upstream_model": "gpt-4o-mini"},
            "gpt-*": {"backend": "up", "owned_by": "openai"},
            "local-*": {"backend": "down"},
        },
        "keys": [
            {"name": "app", "key": CLIENT_KEY},
            {"name": "scoped", "key": SCOPED_KEY, "models": ["gpt-4o"]},
            {"name": "narrow", "key": NARROW_KEY, "models": ["gpt-4o", "gpt-4o-mini"]},
        ],
        "routes": [  # the key's requests for gpt-4o go to `alias`, outside its scope: they are refused
            {
                "name": "aliased",
                "match": {"model": "gpt-4o", "key": "narrow"},
                "targets": [{"model": "alias"}],
            }
        ],
    }


@pytest.fixture
def gw(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    with RunningGateway(config(upstream.url, models_refresh_s=0.3)) as g:
        yield g


def listed(gw: RunningGateway, key: str = CLIENT_KEY) -> dict[str, str]:
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as c:
        return {m.id: m.owned_by for m in c.models.list()}


def test_glob_entries_list_the_upstream_models_they_match(gw: RunningGateway) -> None:
    assert listed(gw) == {"alias": "pointsman", "gpt-4o": "openai", "gpt-4o-mini": "openai"}


def test_a_keys_scope_filters_the_listing(gw: RunningGateway) -> None:
    assert listed(gw, SCOPED_KEY) == {"gpt-4o": "openai"}


def test_a_model_a_keys_route_sends_outside_its_scope_is_not_listed(gw: RunningGateway) -> None:
    assert listed(gw, NARROW_KEY) == {"gpt-4o-mini": "openai"}


def test_retrieving_a_model_a_keys_route_sends_outside_its_scope_is_a_404(gw: RunningGateway) -> None:
    with openai.OpenAI(base_url=gw.base_url, api_key=NARROW_KEY, max_retries=0) as c:
        with pytest.raises(openai.NotFoundError):
            c.models.retrieve("gpt-4o")
        assert c.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_upstream_lists_are_cached_not_fetched_per_request(upstream: FakeOpenAI) -> None:
    with RunningGateway(config(upstream.url)) as g:  # the default refresh: every 300 s
        for _ in range(5):
            listed(g)
    assert upstream.models_calls == 1


def test_upstream_lists_are_refreshed_in_the_background(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    listed(gw)
    upstream.model_ids = (*upstream.model_ids, "gpt-5")
    deadline = time.monotonic() + 5
    while "gpt-5" not in listed(gw) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gpt-5" in listed(gw)


def test_an_upstream_without_a_model_list_does_not_fail_the_listing(gw: RunningGateway) -> None:
    t0 = time.monotonic()
    names = listed(gw)
    assert "alias" in names and not any(n.startswith("local-") for n in names)
    assert time.monotonic() - t0 < 3


def test_the_default_setup_from_the_environment_lists_the_upstreams_models(upstream: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-upstream", "OPENAI_BASE_URL": upstream.url, "POINTSMAN_API_KEY": CLIENT_KEY}
    with RunningGateway(defaults_from_env(env)) as g:
        names = listed(g)
    assert {"gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small"} <= names.keys()
    assert "whisper-1" not in names and set(names.values()) == {"openai"}
