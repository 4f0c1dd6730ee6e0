"""Chat completions through the gateway with the official SDK, non-streaming."""

from __future__ import annotations

import openai

from tests.fakes.openai_upstream import FakeOpenAI

MSG = [{"role": "user", "content": "hi"}]


def test_sync_client_gets_upstream_content_and_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "Hello from primary (gpt-4o-mini)"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 7)


async def test_async_client_gets_upstream_content(aclient: openai.AsyncOpenAI) -> None:
    r = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "Hello from primary (gpt-4o-mini)"


def test_alias_is_sent_upstream_as_its_upstream_model(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="alias", messages=MSG)
    assert upstream.requests[-1].body["model"] == "gpt-4o-mini"
    assert raw.headers["x-pointsman-model"] == "gpt-4o-mini"
    assert raw.headers["x-pointsman-backend"] == "up"


def test_unknown_fields_are_forwarded_untouched(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        extra_body={"top_k": 5, "guided_choice": ["a", "b"], "x": {"y": [1]}},
    )
    body = upstream.requests[-1].body
    assert body["top_k"] == 5
    assert body["guided_choice"] == ["a", "b"]
    assert body["x"] == {"y": [1]}


def test_tools_response_format_and_n_are_forwarded(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        tools=tools,
        n=2,
        response_format={"type": "json_object"},  # type: ignore[list-item]
    )
    body = upstream.requests[-1].body
    assert body["tools"] == tools and body["n"] == 2 and body["response_format"] == {"type": "json_object"}
    assert r.choices[0].message.tool_calls is not None
    assert r.choices[0].message.tool_calls[0].function.name == "lookup"
    assert len(r.choices) == 2


def test_upstream_receives_the_client_request_id(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, extra_headers={"x-request-id": "abc-123"}
    )
    assert upstream.requests[-1].headers.get("x-request-id") == "abc-123"


def test_upstream_credentials_come_from_config_not_the_client(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-upstream-secret"


def test_non_streamed_response_names_its_cost_and_tokens(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert "x-pointsman-cost-usd" in raw.headers
    assert raw.headers["x-pointsman-tokens-input"] == "11"
    assert raw.headers["x-pointsman-tokens-output"] == "7"
