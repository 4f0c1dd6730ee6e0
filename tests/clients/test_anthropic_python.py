"""The official Anthropic Python SDK through the gateway, sync and async: each scenario against a model served
natively by an Anthropic backend and one served by an OpenAI-compatible backend through translation; errors
raise the SDK's own exception types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.clients.anthropic_expected import (
    LIMITED_KEY,
    NATIVE,
    SCOPED_KEY,
    SERVED,
    TOOL_INPUT,
    TRANSLATED,
    WEATHER,
)
from tests.clients.expected import AFTER_TOOL, TOOL_RESULT
from tests.conftest import CLIENT_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.gateway_runner import RunningGateway

HI: list[Any] = [{"role": "user", "content": "hi"}]
BOTH = pytest.mark.parametrize("model", [NATIVE, TRANSLATED])


@pytest.fixture(scope="module")
def claude(claude_gateway: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=claude_gateway.url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def client(gw: RunningGateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


@BOTH
def test_create_answers_the_models_text_and_usage(claude: anthropic.Anthropic, model: str) -> None:
    m = claude.messages.create(model=model, max_tokens=64, messages=HI)
    served = SERVED[model]
    assert (m.type, m.role, m.model, m.stop_reason) == ("message", "assistant", model, "end_turn")
    assert text_of(m) == served.text
    assert (m.usage.input_tokens, m.usage.output_tokens) == served.usage


@BOTH
async def test_async_create(claude_gateway: RunningGateway, model: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=claude_gateway.url, api_key=CLIENT_KEY, max_retries=0) as c:
        m = await c.messages.create(model=model, max_tokens=64, messages=HI)
    assert text_of(m) == SERVED[model].text


@BOTH
def test_messages_stream_yields_text_and_the_final_message(claude: anthropic.Anthropic, model: str) -> None:
    with claude.messages.stream(model=model, max_tokens=64, messages=HI) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    served = SERVED[model]
    assert "".join(pieces) == text_of(final) == served.text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == served.usage


@BOTH
async def test_async_messages_stream(claude_gateway: RunningGateway, model: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=claude_gateway.url, api_key=CLIENT_KEY, max_retries=0) as c:
        async with c.messages.stream(model=model, max_tokens=64, messages=HI) as s:
            final = await s.get_final_message()
    assert text_of(final) == SERVED[model].text


@BOTH
def test_tool_use_round_trip(claude: anthropic.Anthropic, model: str) -> None:
    ask: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = claude.messages.create(model=model, max_tokens=256, messages=ask, tools=[WEATHER])  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert (call.name, call.input) == (WEATHER["name"], TOOL_INPUT)
    reply: list[Any] = [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}]
    second = claude.messages.create(
        model=model,
        max_tokens=256,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[*ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": reply}],
    )
    assert (text_of(second), second.stop_reason) == (AFTER_TOOL, "end_turn")


@BOTH
def test_streamed_tool_use_accumulates_the_tool_input(claude: anthropic.Anthropic, model: str) -> None:
    with claude.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": WEATHER["name"]},
    ) as s:
        final = s.get_final_message()
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert (call.name, call.input, final.stop_reason) == (WEATHER["name"], TOOL_INPUT, "tool_use")


@BOTH
def test_count_tokens(claude: anthropic.Anthropic, model: str) -> None:
    n = claude.messages.count_tokens(model=model, messages=[{"role": "user", "content": "How many tokens?"}])
    assert n.input_tokens > 0


def test_count_tokens_asks_an_anthropic_backend(
    claude: anthropic.Anthropic, claude_upstream: FakeAnthropic
) -> None:
    n = claude.messages.count_tokens(model=NATIVE, messages=[{"role": "user", "content": "one two three"}])
    assert n.input_tokens == 6  # the fake's count: 3 + one per word
    assert claude_upstream.counted[-1]["messages"] == [{"role": "user", "content": "one two three"}]


@BOTH
def test_responses_carry_the_gateway_headers(claude: anthropic.Anthropic, model: str) -> None:
    raw = claude.messages.with_raw_response.create(model=model, max_tokens=64, messages=HI)
    assert raw.headers["x-pointsman-backend"] == SERVED[model].backend
    assert raw.headers["x-pointsman-model"] == model
    assert raw.headers["x-pointsman-tokens-output"] == str(SERVED[model].usage[1])
    assert float(raw.headers["x-pointsman-cost-usd"]) >= 0


# -- errors ------------------------------------------------------------------------------------------------------
def test_a_wrong_key_raises_authentication_error(claude_gateway: RunningGateway) -> None:
    with client(claude_gateway, "sk-wrong") as c, pytest.raises(anthropic.AuthenticationError) as info:
        c.messages.create(model=NATIVE, max_tokens=8, messages=HI)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }


def test_a_bearer_key_is_accepted_too(claude_gateway: RunningGateway) -> None:
    with anthropic.Anthropic(base_url=claude_gateway.url, auth_token=CLIENT_KEY, max_retries=0) as c:
        assert text_of(c.messages.create(model=NATIVE, max_tokens=8, messages=HI)) == SERVED[NATIVE].text


def test_an_unknown_model_raises_not_found_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(model="no-such-model", max_tokens=8, messages=HI)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_an_out_of_range_parameter_raises_bad_request_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model=NATIVE, max_tokens=8, messages=HI, extra_body={"temperature": 1.5})
    assert "temperature" in info.value.message


def test_a_model_outside_the_keys_scope_raises_permission_denied(claude_gateway: RunningGateway) -> None:
    with client(claude_gateway, SCOPED_KEY) as c, pytest.raises(anthropic.PermissionDeniedError):
        c.messages.create(model=TRANSLATED, max_tokens=8, messages=HI)


def test_what_cannot_be_translated_raises_bad_request_naming_the_field(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model=TRANSLATED,
            max_tokens=4096,
            messages=HI,
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "`thinking`" in info.value.message


def test_an_overloaded_upstream_raises_overloaded_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        claude.messages.create(model="claude-overloaded", max_tokens=8, messages=HI)
    assert info.value.status_code == 529


def test_the_rate_limit_raises_rate_limit_error(claude_gateway: RunningGateway) -> None:
    with client(claude_gateway, LIMITED_KEY) as c:
        c.messages.create(model=NATIVE, max_tokens=8, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as info:
            c.messages.create(model=NATIVE, max_tokens=8, messages=HI)
    assert info.value.response.headers.get("retry-after")


def test_a_stream_that_fails_midway_raises_in_the_stream(claude: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        claude.messages.stream(model="claude-midstream", max_tokens=64, messages=HI) as s,
    ):
        s.get_final_message()
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
