"""A vLLM backend with several endpoints spreads requests by least outstanding, counting the queue each server
reports in /metrics, and skips an endpoint whose /health fails (all scraped in the background)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import basic_config
from tests.routing.conftest import admin, chat, sdk
from tests.routing.fake_vllm import FakeVLLMEndpoint


@pytest.fixture
def endpoints() -> Iterator[tuple[FakeVLLMEndpoint, FakeVLLMEndpoint]]:
    a, b = FakeVLLMEndpoint(name="vllm-a").start(), FakeVLLMEndpoint(name="vllm-b").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def gw(endpoints: tuple[FakeVLLMEndpoint, FakeVLLMEndpoint], gateway_factory: Any) -> Any:
    a, b = endpoints
    cfg = basic_config(a.url)
    cfg["backends"]["fleet"] = {"type": "vllm", "endpoints": [a.url, b.url], "health_interval_s": 0.05}  # type: ignore[index]
    cfg["models"]["tiny"] = {"backend": "fleet"}  # type: ignore[index]
    return gateway_factory(cfg)


def endpoint_state(gw: Any, url: str) -> dict[str, Any]:
    eps = admin(gw).get("/admin/backends/fleet/health").json()["endpoints"]
    return next(e for e in eps if e["url"] == url)


def wait_for(check: Any, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_concurrent_requests_spread_over_the_endpoints(endpoints: Any, gw: Any) -> None:
    a, b = endpoints
    a.delay = b.delay = 1.5  # all ten in flight at once, even when threads start slowly on a loaded machine
    client = sdk(gw)
    threads = [threading.Thread(target=lambda: chat(client, "tiny")) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(a.requests), len(b.requests)) == (5, 5)


def test_reported_queue_depth_steers_requests_away(endpoints: Any, gw: Any) -> None:
    a, b = endpoints
    a.waiting = 40
    wait_for(lambda: endpoint_state(gw, a.url)["waiting"] == 40)
    client = sdk(gw)
    for _ in range(6):
        chat(client, "tiny")
    assert (len(a.requests), len(b.requests)) == (0, 6)


def test_endpoint_failing_health_checks_is_skipped_until_it_recovers(endpoints: Any, gw: Any) -> None:
    a, b = endpoints
    a.health_status = 503
    wait_for(lambda: not endpoint_state(gw, a.url)["healthy"])
    client = sdk(gw)
    for _ in range(4):
        chat(client, "tiny")
    assert len(a.requests) == 0
    a.health_status = 200
    wait_for(lambda: endpoint_state(gw, a.url)["healthy"])
    for _ in range(4):
        chat(client, "tiny")
    assert len(a.requests) == 2


def test_metadata_is_not_forwarded_to_vllm(endpoints: Any, gw: Any) -> None:
    a, b = endpoints
    chat(sdk(gw), "tiny", metadata={"task": "x"})
    assert "metadata" not in (a.requests or b.requests)[-1].body
