"""A backend's concurrency cap sheds excess requests with 429 + Retry-After instead of queueing them."""

from __future__ import annotations

import threading
import time
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import chat, sdk, two_backend_config


def capped_config(upstream: FakeOpenAI, upstream2: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    cfg = two_backend_config(upstream, upstream2, **extra)
    cfg["backends"]["capped"] = {"type": "openai", "base_url": upstream.url, "max_concurrency": 1}
    cfg["models"]["slow"] = {"backend": "capped", "upstream_model": "fake-slow"}
    return cfg


def occupy(client: openai.OpenAI, upstream: FakeOpenAI, model: str = "slow") -> threading.Thread:
    """Start one slow request and return once the upstream has it."""
    n = len(upstream.requests)
    t = threading.Thread(target=lambda: chat(client, model))
    t.start()
    deadline = time.monotonic() + 2
    while len(upstream.requests) == n and time.monotonic() < deadline:
        time.sleep(0.005)
    return t


def test_requests_over_the_cap_get_429_with_retry_after(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(capped_config(upstream, upstream2))
    client = sdk(gw)
    busy = occupy(client, upstream)
    t0 = time.monotonic()
    with pytest.raises(openai.RateLimitError) as err:
        chat(client, "slow")
    assert time.monotonic() - t0 < 0.2  # shed at once, not queued behind the slow request
    assert err.value.code == "backend_overloaded"
    assert int(err.value.response.headers["retry-after"]) >= 1
    busy.join()
    assert len(upstream.requests) == 1


def test_capacity_frees_up_when_the_request_finishes(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(capped_config(upstream, upstream2))
    client = sdk(gw)
    occupy(client, upstream).join()
    assert chat(client, "slow")["x-pointsman-backend"] == "capped"


def test_overloaded_target_falls_back_when_the_rule_has_a_fallback(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    routes = [{"name": "spill", "match": {"model": "svc"}, "targets": [{"model": "slow"}], "fallbacks": ["m-secondary"]}]
    gw = gateway_factory(capped_config(upstream, upstream2, routes=routes))
    client = sdk(gw)
    busy = occupy(client, upstream, "svc")
    assert chat(client, "svc")["x-pointsman-backend"] == "up2"
    busy.join()
