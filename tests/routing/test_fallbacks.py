"""A target that fails before any byte reached the client falls back to the next model, within the deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import MSG, chat, sdk, two_backend_config

FAILURES = ["fail_500", "fail_503", "fail_429", "fail_400"]


def fallback_rule(name: str, primary: str, **rule: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"model": name},
        "targets": [{"model": primary}],
        "fallbacks": ["m-secondary"],
        **rule,
    }


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    """Rule ``svc-<failure>`` sends to a primary that answers with that failure, falling back to the secondary."""
    routes = [fallback_rule(f"svc-{f}", f"primary-{f}") for f in FAILURES]
    routes += [
        fallback_rule("svc-dead", "dead-model"),
        fallback_rule("svc-hang", "primary-hang", timeout_s=0.5, fallbacks=["hang2"]),
        fallback_rule("svc-defaults", "m-primary", defaults={"max_tokens": 64, "temperature": 0}),
    ]
    cfg = two_backend_config(*shared_upstreams, routes=routes)
    cfg["routing"]["breaker"] = {"consecutive_failures": 1000}  # these tests are about retries, not breakers
    cfg["backends"]["dead"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1}
    cfg["models"].update(
        {f"primary-{f}": {"backend": "up", "upstream_model": f"fake-{f}"} for f in [*FAILURES, "hang"]}
    )
    cfg["models"]["dead-model"] = {"backend": "dead"}
    cfg["models"]["hang2"] = {"backend": "up2", "upstream_model": "fake-hang"}
    cfg["models"]["svc*"] = {"backend": "up"}
    with RunningGateway(cfg) as g:
        yield g


@pytest.mark.parametrize("failure", ["fail_500", "fail_503", "fail_429"])
def test_failing_primary_falls_back(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI], failure: str
) -> None:
    upstream, upstream2 = fresh
    headers = chat(sdk(gw), f"svc-{failure}")
    assert headers["x-pointsman-backend"] == "up2"
    assert headers["x-pointsman-route"] == f"svc-{failure}"
    assert [r.body["model"] for r in upstream.requests] == [f"fake-{failure}"]
    assert len(upstream2.requests) == 1


def test_unreachable_primary_falls_back(gw: RunningGateway, fresh: Any) -> None:
    assert chat(sdk(gw), "svc-dead")["x-pointsman-backend"] == "up2"


def test_streamed_request_falls_back_before_the_first_byte(gw: RunningGateway, fresh: Any) -> None:
    with sdk(gw).chat.completions.with_streaming_response.create(
        model="svc-fail_503",
        messages=MSG,
        stream=True,  # type: ignore[arg-type]
    ) as resp:
        assert resp.headers["x-pointsman-backend"] == "up2"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == "Hello from secondary (gpt-4o-mini)"


def test_client_error_is_not_retried_on_a_fallback(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    with pytest.raises(openai.BadRequestError):
        chat(sdk(gw), "svc-fail_400")
    assert not fresh[1].requests


def test_whole_request_stays_within_the_rules_timeout(gw: RunningGateway, fresh: Any) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        chat(sdk(gw), "svc-hang")
    elapsed = time.monotonic() - t0
    assert err.value.status_code == 504
    assert 0.45 <= elapsed < 1.0


def test_rule_defaults_fill_parameters_the_client_left_out(
    gw: RunningGateway, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    client = sdk(gw)
    chat(client, "svc-defaults")
    assert fresh[0].requests[-1].body["max_tokens"] == 64
    chat(client, "svc-defaults", max_tokens=5)
    assert fresh[0].requests[-1].body["max_tokens"] == 5


def backoff_gateway(
    fresh: tuple[FakeOpenAI, FakeOpenAI], gateway_factory: Any, retries: int, base_s: float, max_s: float
) -> RunningGateway:
    rule = fallback_rule("svc", "primary", fallbacks=[], max_retries=retries)
    cfg = two_backend_config(*fresh, routes=[rule])
    cfg["models"].update(
        {"primary": {"backend": "up", "upstream_model": "fake-fail_500"}, "svc": {"backend": "up"}}
    )
    cfg["routing"]["backoff"] = {"base_s": base_s, "max_s": max_s}
    cfg["routing"]["breaker"] = {"consecutive_failures": 1000}
    return gateway_factory(cfg)  # type: ignore[no-any-return]


def test_retries_back_off_exponentially(fresh: tuple[FakeOpenAI, FakeOpenAI], gateway_factory: Any) -> None:
    gw = backoff_gateway(fresh, gateway_factory, retries=2, base_s=0.1, max_s=1.0)
    with pytest.raises(openai.APIStatusError) as err:
        chat(sdk(gw), "svc")
    assert err.value.status_code == 502
    times = [r.t for r in fresh[0].requests]
    assert len(times) == 3
    # jittered into [d/2, d]: first wait in [0.05, 0.1], second in [0.1, 0.2]
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1


def test_retry_waits_are_capped(fresh: tuple[FakeOpenAI, FakeOpenAI], gateway_factory: Any) -> None:
    gw = backoff_gateway(fresh, gateway_factory, retries=7, base_s=0.05, max_s=0.05)
    with pytest.raises(openai.APIStatusError):
        chat(sdk(gw), "svc")
    times = [r.t for r in fresh[0].requests]
    assert len(times) == 8
    # capped at 0.05 s; uncapped, the seventh wait would be 0.05 * 2**6 = 3.2 s (at least 1.6 s after jitter)
    assert times[-1] - times[-2] < 1.0
