"""The fakes' objects and stream events validate against the OpenAI Python SDK's types (the clients' own
reading of the API's published schema)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.fakes import openai_chat, openai_responses
from tests.fakes.openai_answers import decide
from tests.fakes.openai_upstream import FakeOpenAI

TOOLS = [
    {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
]
CHAT_BODIES: list[dict[str, Any]] = [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
    },
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS},
    {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
    },
]
RESPONSES_BODIES: list[dict[str, Any]] = [
    {"model": "m", "input": "hi"},
    {"model": "m", "input": "hi", "tools": [{"type": "function", **TOOLS[0]["function"]}]},
    {"model": "m", "input": "hi", "include": ["message.output_text.logprobs"], "top_logprobs": 2},
]
FAKE = FakeOpenAI(cached_tokens=3, reasoning_tokens=2)


def strict(model: Any, doc: Any) -> None:
    """Validate, and fail on fields the SDK type does not know (a typo in the fake)."""
    obj = TypeAdapter(model).validate_python(doc)
    extra = getattr(obj, "model_extra", None)
    assert not extra, f"fields unknown to {model}: {sorted(extra)}"


@pytest.mark.parametrize("body", CHAT_BODIES)
def test_chat_completion_matches_the_sdk_type(body: dict[str, Any]) -> None:
    answers = [decide(body, "hello there", i) for i in range(body.get("n", 1))]
    strict(ChatCompletion, openai_chat.completion(body, answers, FAKE.usage(), 3))


@pytest.mark.parametrize("body", CHAT_BODIES)
def test_chat_chunks_match_the_sdk_type(body: dict[str, Any]) -> None:
    answers = [decide(body, "hello there", i) for i in range(body.get("n", 1))]
    for chunk, _ in openai_chat.chunks(body, answers, FAKE.usage(), 3):
        strict(ChatCompletionChunk, chunk)


@pytest.mark.parametrize("body", RESPONSES_BODIES)
def test_response_and_its_events_match_the_sdk_types(body: dict[str, Any]) -> None:
    answer = decide(body, "hello there")
    strict(Response, openai_responses.response(body, answer, FAKE.usage(chat=False), 3))
    events = openai_responses.events(body, answer, FAKE.usage(chat=False), 3)
    for ev, _ in events:
        TypeAdapter(ResponseStreamEvent).validate_python(ev)
    assert [ev["sequence_number"] for ev, _ in events] == list(range(len(events)))
