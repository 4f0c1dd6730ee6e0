"""An OpenAI SDK client talks to Anthropic's Messages API through the gateway (litellm translation)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.anthropic_upstream import RATE_LIMITS, FakeAnthropic
from tests.fakes.telemetry import FakeTelemetry
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def attacker() -> Iterator[FakeAnthropic]:
    """Where a client body's ``api_base`` would send the gateway's Anthropic credential."""
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def telemetry() -> Iterator[FakeTelemetry]:
    t = FakeTelemetry().start()
    yield t
    t.stop()


# One gateway for the module: litellm caches its HTTP clients per process, bound to the first event loop.
@pytest.fixture(scope="module")
def claude(anthropic: FakeAnthropic, telemetry: FakeTelemetry) -> Iterator[openai.OpenAI]:
    cfg = anthropic.gateway_config(CLIENT_KEY)
    # a provider backend at its default address (unreachable here): only a body's api_base could redirect it
    cfg["backends"]["direct"] = {"type": "litellm", "provider": "anthropic", "api_key": "sk-ant-test"}
    cfg["models"]["direct-claude"] = {"backend": "direct"}
    cfg["observability"] = {"traces": {"endpoint": telemetry.url}, "logs": {"enabled": False}}
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        yield c


def test_chat_is_translated_to_anthropic_messages(claude: openai.OpenAI, anthropic: FakeAnthropic) -> None:
    r = claude.chat.completions.create(model="claude-3-5-haiku", messages=MSG, max_tokens=20)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Bonjour from Claude"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (13, 9)
    assert anthropic.requests[-1]["model"] == "claude-3-5-haiku"
    assert anthropic.headers[-1]["x-api-key"] == "sk-ant-test"


def test_streamed_chat_is_translated(claude: openai.OpenAI) -> None:
    chunks = list(
        claude.chat.completions.create(
            model="claude-3-5-haiku",
            messages=MSG,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "Bonjour from Claude"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


def test_a_chat_answer_through_litellm_carries_the_providers_request_id_and_rate_limits(
    claude: openai.OpenAI, anthropic: FakeAnthropic
) -> None:
    r = claude.chat.completions.with_raw_response.create(
        model="claude-3-5-haiku", messages=MSG, max_tokens=20
    )  # type: ignore[arg-type]
    assert r.headers["request-id"] == anthropic.answered_ids[-1]
    assert (
        r.headers["anthropic-ratelimit-requests-limit"] == RATE_LIMITS["anthropic-ratelimit-requests-limit"]
    )
    assert r.headers["x-request-id"] != anthropic.answered_ids[-1]  # the gateway's own


def test_a_chat_stream_through_litellm_carries_the_providers_request_id(
    claude: openai.OpenAI, anthropic: FakeAnthropic
) -> None:
    with claude.chat.completions.with_streaming_response.create(
        model="claude-3-5-haiku",
        messages=MSG,  # type: ignore[arg-type]
        max_tokens=20,
        stream=True,
    ) as r:
        r.read()
        assert r.headers["request-id"] == anthropic.answered_ids[-1]


def test_a_rate_limited_answer_through_litellm_carries_the_providers_retry_after_and_request_id(
    claude: openai.OpenAI, anthropic: FakeAnthropic
) -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}'
    anthropic.canned["claude-limited"] = (429, body, {"retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as info:
        claude.chat.completions.create(model="claude-limited", messages=MSG, max_tokens=5)  # type: ignore[arg-type]
    headers = info.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["request-id"] == anthropic.answered_ids[-1]
    assert headers["anthropic-ratelimit-requests-limit"] == RATE_LIMITS["anthropic-ratelimit-requests-limit"]


def test_provider_error_is_openai_shaped(claude: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        claude.chat.completions.create(model="claude-overloaded", messages=MSG, max_tokens=5)  # type: ignore[arg-type]
    assert info.value.status_code == 502


def test_provider_call_carries_the_request_id_and_the_calls_traceparent(
    claude: openai.OpenAI, anthropic: FakeAnthropic
) -> None:
    r = claude.chat.completions.with_raw_response.create(
        model="claude-3-5-haiku",
        messages=MSG,  # type: ignore[arg-type]
        max_tokens=20,
        extra_headers={"x-request-id": "lit-1", "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"},
    )
    assert r.http_response.status_code == 200
    sent = {k.lower(): v for k, v in anthropic.headers[-1].items()}
    assert sent.get("x-request-id") == "lit-1", sent
    version, trace_id, span_id, flags = sent["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "a" * 32, "01") and span_id != "b" * 16  # the call's own span


def test_a_body_cannot_redirect_a_provider_call_or_set_litellm_options(
    claude: openai.OpenAI, attacker: FakeAnthropic
) -> None:
    with pytest.raises(openai.APIStatusError):  # the provider's real address is unreachable from here
        claude.chat.completions.create(
            model="direct-claude",
            messages=MSG,  # type: ignore[arg-type]
            max_tokens=20,
            extra_body={
                "api_base": attacker.url,
                "base_url": attacker.url,
                "extra_headers": {"x-leak": "1"},
                "mock_response": "forged answer",
                "litellm_logging_obj": None,
            },
        )
    assert attacker.requests == [] and attacker.headers == []


def test_litellm_options_in_a_body_are_not_applied(claude: openai.OpenAI, anthropic: FakeAnthropic) -> None:
    r = claude.chat.completions.create(
        model="claude-3-5-haiku",
        messages=MSG,  # type: ignore[arg-type]
        max_tokens=20,
        extra_body={"mock_response": "forged answer", "extra_headers": {"x-api-key": "sk-client-chosen"}},
    )
    assert r.choices[0].message.content == "Bonjour from Claude"
    assert anthropic.headers[-1]["x-api-key"] == "sk-ant-test"
