"""A target that fails before any byte reached the client falls back to the next model, within the deadline."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.routing.conftest import MSG, chat, sdk, two_backend_config


def fallback_config(upstream: FakeOpenAI, upstream2: FakeOpenAI, primary_upstream_model: str,
                    **rule: Any) -> dict[str, Any]:
    route = {"name": "with-fallback", "match": {"model": "svc"}, "targets": [{"model": "primary"}],
             "fallbacks": ["m-secondary"], **rule}
    cfg = two_backend_config(upstream, upstream2, routes=[route])
    cfg["models"]["primary"] = {"backend": "up", "upstream_model": primary_upstream_model}
    return cfg


@pytest.mark.parametrize("failure", ["fake-fail_500", "fake-fail_503", "fake-fail_429"])
def test_failing_primary_falls_back(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any,
                                    failure: str) -> None:
    gw = gateway_factory(fallback_config(upstream, upstream2, failure))
    headers = chat(sdk(gw), "svc")
    assert headers["x-pointsman-backend"] == "up2"
    assert headers["x-pointsman-route"] == "with-fallback"
    assert [r.body["model"] for r in upstream.requests] == [failure]
    assert len(upstream2.requests) == 1


def test_unreachable_primary_falls_back(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    cfg = fallback_config(upstream, upstream2, "fake")
    cfg["backends"]["dead"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1}
    cfg["models"]["primary"] = {"backend": "dead"}
    gw = gateway_factory(cfg)
    assert chat(sdk(gw), "svc")["x-pointsman-backend"] == "up2"


def test_streamed_request_falls_back_before_the_first_byte(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(fallback_config(upstream, upstream2, "fake-fail_502"))
    with sdk(gw).chat.completions.with_streaming_response.create(model="svc", messages=MSG, stream=True) as resp:  # type: ignore[arg-type]
        assert resp.headers["x-pointsman-backend"] == "up2"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == "Hello from secondary (gpt-4o-mini)"


def test_client_error_is_not_retried_on_a_fallback(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(fallback_config(upstream, upstream2, "fake-fail_400"))
    with pytest.raises(openai.BadRequestError):
        chat(sdk(gw), "svc")
    assert not upstream2.requests


def test_retries_back_off_exponentially(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    cfg = fallback_config(upstream, upstream2, "fake-fail_500", fallbacks=[], max_retries=2)
    cfg["routing"]["backoff"] = {"base_s": 0.1, "max_s": 1.0}
    gw = gateway_factory(cfg)
    with pytest.raises(openai.APIStatusError) as err:
        chat(sdk(gw), "svc")
    assert err.value.status_code == 502
    times = [r.t for r in upstream.requests]
    assert len(times) == 3
    # jittered into [d/2, d]: first wait in [0.05, 0.1], second in [0.1, 0.2]
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1


def test_retry_waits_are_capped(upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any) -> None:
    cfg = fallback_config(upstream, upstream2, "fake-fail_500", fallbacks=[], max_retries=5)
    cfg["routing"]["backoff"] = {"base_s": 0.05, "max_s": 0.05}
    cfg["routing"]["breaker"] = {"consecutive_failures": 100}
    gw = gateway_factory(cfg)
    with pytest.raises(openai.APIStatusError):
        chat(sdk(gw), "svc")
    times = [r.t for r in upstream.requests]
    assert len(times) == 6
    # capped at 0.05 s; uncapped, the fifth wait would be 0.05 * 2**4 = 0.8 s (at least 0.4 s after jitter)
    assert times[-1] - times[-2] < 0.3


def test_whole_request_stays_within_the_rules_timeout(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    cfg = fallback_config(upstream, upstream2, "fake-hang", timeout_s=0.5, fallbacks=["hang2"])
    cfg["models"]["hang2"] = {"backend": "up2", "upstream_model": "fake-hang"}
    gw = gateway_factory(cfg)
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        chat(sdk(gw), "svc")
    elapsed = time.monotonic() - t0
    assert err.value.status_code == 504
    assert 0.45 <= elapsed < 0.9


def test_rule_defaults_fill_parameters_the_client_left_out(
    upstream: FakeOpenAI, upstream2: FakeOpenAI, gateway_factory: Any
) -> None:
    gw = gateway_factory(fallback_config(upstream, upstream2, "fake", defaults={"max_tokens": 64, "temperature": 0}))
    client = sdk(gw)
    chat(client, "svc")
    assert upstream.requests[-1].body["max_tokens"] == 64
    chat(client, "svc", max_tokens=5)
    assert upstream.requests[-1].body["max_tokens"] == 5
