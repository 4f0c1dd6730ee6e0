"""A backend's concurrency cap sheds excess requests with 429 + Retry-After instead of queueing them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import chat, sdk, two_backend_config


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    """Backend ``capped`` (one request at a time) serves model ``slow`` (0.5 s); rule ``svc`` spills to up2."""
    routes = [
        {
            "name": "spill",
            "match": {"model": "svc"},
            "targets": [{"model": "slow"}],
            "fallbacks": ["m-secondary"],
        }
    ]
    cfg = two_backend_config(*shared_upstreams, routes=routes)
    cfg["backends"]["capped"] = {"type": "openai", "base_url": shared_upstreams[0].url, "max_concurrency": 1}
    cfg["models"].update(
        {"slow": {"backend": "capped", "upstream_model": "fake-slow"}, "svc": {"backend": "up"}}
    )
    with RunningGateway(cfg) as g:
        yield g


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
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    client = sdk(gw)
    busy = occupy(client, fresh[0])
    t0 = time.monotonic()
    with pytest.raises(openai.RateLimitError) as err:
        chat(client, "slow")
    assert time.monotonic() - t0 < 0.3  # shed at once, not queued behind the 0.5 s request
    assert err.value.code == "backend_overloaded"
    assert int(err.value.response.headers["retry-after"]) >= 1
    busy.join()
    assert len(fresh[0].requests) == 1


def test_capacity_frees_up_when_the_request_finishes(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    client = sdk(gw)
    occupy(client, fresh[0]).join()
    assert chat(client, "slow")["x-pointsman-backend"] == "capped"


def test_overloaded_target_falls_back_when_the_rule_has_a_fallback(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    client = sdk(gw)
    busy = occupy(client, fresh[0], "svc")
    assert chat(client, "svc")["x-pointsman-backend"] == "up2"
    busy.join()
