"""Messages requests for a model on an OpenAI-compatible backend are translated both ways: the upstream gets a
Chat Completions request, the client a Messages answer or a valid Messages event stream; what has no Chat
Completions equivalent is refused naming the field, before any upstream call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.messages.conftest import TRANSLATED, Messages, ask, messages_config
from tests.wire.anthropic.event_order import check_sequence

TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            },
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
]


@pytest.fixture
def gw(claude: FakeAnthropic, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    with RunningGateway(messages_config(claude, upstream, tmp_path)) as g:
        yield g


def test_the_upstream_gets_the_chat_completions_translation(api: Messages, upstream: FakeOpenAI) -> None:
    r = api.post(
        {
            "model": TRANSLATED,
            "max_tokens": 300,
            "system": "Be brief.",
            "messages": CONVERSATION,
            "tools": [TOOL],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "stop_sequences": ["END"],
            "temperature": 0.2,
        }
    )
    assert r.status_code == 200, r.text
    sent = upstream.requests[-1].body
    assert sent == {
        "model": TRANSLATED,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        ],
        "max_completion_tokens": 300,
        "stop": ["END"],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": TOOL["input_schema"]}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    assert r.json()["content"] == [{"type": "text", "text": "The tool said: sunny"}]


def test_a_tool_call_comes_back_as_a_tool_use_block(api: Messages) -> None:
    doc = api.post(ask(TRANSLATED, "Weather in Paris?", tools=[TOOL])).json()
    assert doc["stop_reason"] == "tool_use"
    (block,) = doc["content"]
    assert (block["type"], block["name"], sorted(block["input"])) == ("tool_use", "get_weather", ["city"])


@pytest.mark.parametrize("tools", [False, True])
def test_a_streamed_translation_is_a_valid_messages_event_sequence(api: Messages, tools: bool) -> None:
    body = ask(TRANSLATED, "Weather in Paris?", **({"tools": [TOOL]} if tools else {}))
    r, raw = api.stream(body)
    assert r.status_code == 200
    events = check_sequence([raw])
    delta = next(doc for name, doc in events if name == "message_delta")
    assert delta["delta"]["stop_reason"] == ("tool_use" if tools else "end_turn")
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (11, 7)


def test_the_upstream_is_asked_for_stream_usage(api: Messages, upstream: FakeOpenAI) -> None:
    api.stream(ask(TRANSLATED))
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


def test_what_cannot_be_translated_is_refused_naming_the_field(api: Messages, upstream: FakeOpenAI) -> None:
    sent = len(upstream.requests)
    bad = [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "failed", "is_error": True}]
    r = api.post({**ask(TRANSLATED), "messages": [*CONVERSATION[:2], {"role": "user", "content": bad}]})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "`messages[2].content[0].is_error`" in r.json()["error"]["message"]
    assert len(upstream.requests) == sent


def test_a_translated_stream_the_upstream_breaks_ends_with_an_error_event(api: Messages) -> None:
    r, raw = api.stream(ask("fake-reset_mid_stream"))
    events = check_sequence([raw], complete=False)
    assert events[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The upstream closed the connection before its answer was complete.",
            },
        },
    )


def test_the_upstreams_own_refusal_is_said_in_anthropics_shape(api: Messages) -> None:
    r = api.post(ask("fake-fail_400"))
    assert r.status_code == 400
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    assert set(doc["error"]) == {"type", "message"}


def test_count_tokens_is_counted_by_the_gateway(api: Messages, upstream: FakeOpenAI) -> None:
    sent = len(upstream.requests)
    r = api.post(
        {"model": TRANSLATED, "messages": [{"role": "user", "content": "one two three"}]},
        "/v1/messages/count_tokens",
    )
    assert r.status_code == 200
    assert r.json()["input_tokens"] > 0
    assert r.headers["x-pointsman-usage"] == "estimated"
    assert len(upstream.requests) == sent
