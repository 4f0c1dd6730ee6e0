"""A dead backend trips its endpoint's circuit breaker: requests then skip it at no cost, and a probe after
``open_s`` closes it again once the upstream is back."""

from __future__ import annotations

import threading
import time
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import admin, chat, sdk, two_backend_config


def breaker_config(
    upstream: FakeOpenAI,
    upstream2: FakeOpenAI,
    fallbacks: list[str],
    open_s: float = 30.0,
    timeout_s: float = 5.0,
) -> dict[str, Any]:
    """Model ``flaky`` on backend ``dead`` (the secondary fake, with a short timeout) as the rule's target."""
    route = {
        "name": "flaky-first",
        "match": {"model": "svc"},
        "targets": [{"model": "flaky"}],
        "fallbacks": fallbacks,
    }
    cfg = two_backend_config(upstream, upstream2, routes=[route])
    cfg["backends"]["dead"] = {"type": "openai", "base_url": upstream2.url, "timeout_s": timeout_s}
    cfg["models"]["flaky"] = {"backend": "dead", "upstream_model": "flaky-model"}
    cfg["routing"]["breaker"] = {"consecutive_failures": 3, "open_s": open_s}
    return cfg


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def test_dead_backend_trips_its_breaker_and_stops_costing_time(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "hang"
    gw = gateway_factory(breaker_config(upstream, upstream2, ["gpt-4o-mini"], timeout_s=0.4))
    client = sdk(gw)
    before = [timed(lambda: chat(client, "svc")) for _ in range(3)]
    assert all(t >= 0.35 for t, _ in before)  # each waited for the dead upstream's timeout, then fell back
    after = [timed(lambda: chat(client, "svc")) for _ in range(5)]
    assert all(h["x-pointsman-backend"] == "up" for _, h in after)
    assert max(t for t, _ in after) < 0.3  # open: the dead hop (0.4 s to its timeout) is skipped
    assert len(upstream2.requests) == 3


def test_breaker_state_is_reported_per_endpoint(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "fail_500"
    gw = gateway_factory(breaker_config(upstream, upstream2, ["gpt-4o-mini"]))
    client = sdk(gw)
    for _ in range(3):
        chat(client, "svc")
    health = admin(gw).get("/admin/backends/dead/health").json()
    assert health["up"] is False
    assert health["endpoints"] == [
        {
            "url": upstream2.url,
            "circuit": "open",
            "healthy": True,
            "outstanding": 0,
            "waiting": 0.0,
            "running": 0.0,
        }
    ]


def test_half_open_probe_closes_the_breaker_when_the_upstream_recovers(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "fail_500"
    gw = gateway_factory(breaker_config(upstream, upstream2, ["gpt-4o-mini"], open_s=0.3))
    client = sdk(gw)
    for _ in range(3):
        chat(client, "svc")
    upstream2.behaviors["flaky-model"] = "ok"
    time.sleep(0.35)
    assert chat(client, "svc")["x-pointsman-backend"] == "dead"  # the probe
    assert [chat(client, "svc")["x-pointsman-backend"] for _ in range(3)] == ["dead"] * 3  # closed


def test_failed_probe_keeps_the_breaker_open(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "fail_500"
    gw = gateway_factory(breaker_config(upstream, upstream2, ["gpt-4o-mini"], open_s=1.0))
    client = sdk(gw)
    for _ in range(3):
        chat(client, "svc")
    time.sleep(1.05)
    chat(client, "svc")  # probe fails, falls back; open again for 2 s (three requests need far less)
    assert len(upstream2.requests) == 4
    for _ in range(3):
        chat(client, "svc")
    assert len(upstream2.requests) == 4  # open again, for longer


def test_only_one_probe_is_let_through_while_half_open(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "fail_500"
    gw = gateway_factory(breaker_config(upstream, upstream2, ["gpt-4o-mini"], open_s=0.2))
    client = sdk(gw)
    for _ in range(3):
        chat(client, "svc")
    upstream2.behaviors["flaky-model"] = "slow"
    upstream2.delay = 1.5  # the probe stays in flight while the others are routed
    time.sleep(0.25)
    probe = threading.Thread(target=lambda: chat(client, "svc"))
    probe.start()
    deadline = time.monotonic() + 2
    while len(upstream2.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    others = [chat(client, "svc")["x-pointsman-backend"] for _ in range(3)]
    probe.join()
    assert others == ["up"] * 3
    assert len(upstream2.requests) == 4


def test_request_fails_fast_when_every_target_is_open(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    upstream2.behaviors["flaky-model"] = "hang"
    gw = gateway_factory(breaker_config(upstream, upstream2, [], timeout_s=0.4))
    client = sdk(gw)
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            chat(client, "svc")
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        chat(client, "svc")
    assert time.monotonic() - t0 < 0.15
    assert err.value.status_code == 503
    assert err.value.code == "no_healthy_backend"
    assert int(err.value.response.headers["retry-after"]) >= 1


def test_error_rate_over_the_window_opens_the_breaker(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    cfg = breaker_config(upstream, upstream2, ["gpt-4o-mini"])
    cfg["routing"]["breaker"] = {
        "consecutive_failures": 100,
        "error_rate": 0.5,
        "min_requests": 6,
        "window_s": 30,
    }
    gw = gateway_factory(cfg)
    client = sdk(gw)
    for i in range(6):  # alternate success and failure: never 2 failures in a row, 50% errors
        upstream2.behaviors["flaky-model"] = "fail_500" if i % 2 else "ok"
        chat(client, "svc")
    upstream2.behaviors["flaky-model"] = "ok"
    assert chat(client, "svc")["x-pointsman-backend"] == "up"
    assert len(upstream2.requests) == 6
