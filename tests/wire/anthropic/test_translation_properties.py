"""Translation properties over generated conversations: a Messages request with tools and multi-turn tool
results survives Anthropic -> OpenAI -> Anthropic; a chat answer streamed in any pieces translates to a valid
Messages event sequence that says what the unary translation says."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.anthropic.chat_stream import chat_stream
from tests.wire.anthropic.event_order import check_sequence
from wire.anthropic.answer import assemble_message
from wire.anthropic.from_chat import from_chat_completion, from_chat_request
from wire.anthropic.stream import ChatStreamTranslator
from wire.anthropic.to_chat import to_chat_request
from wire.sse import json_events

text = st.text(min_size=1, max_size=20)
name = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
tool_input = st.dictionaries(st.text(max_size=6), json_value, max_size=4)
image = st.builds(
    lambda kind, data: (
        {"type": "image", "source": {"type": "base64", "media_type": f"image/{kind}", "data": data}}
        if data
        else {"type": "image", "source": {"type": "url", "url": f"https://img.test/{kind}.png"}}
    ),
    st.sampled_from(["png", "jpeg"]),
    st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9+/]{4,40}", fullmatch=True)),
)
user_block = st.one_of(st.builds(lambda t: {"type": "text", "text": t}, text), image)
tool_result_content = st.one_of(
    text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, text), min_size=1, max_size=2)
)


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    """user, then assistant turns (text and/or tool calls), each followed by a user turn answering every call."""
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": draw(st.one_of(text, st.lists(user_block, min_size=1, max_size=3)))}
    ]
    n = 0
    for _ in range(draw(st.integers(0, 3))):
        blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(text)})
        calls = draw(st.integers(0 if blocks else 1, 3))
        ids = []
        for _ in range(calls):
            n += 1
            ids.append(f"toolu_{n}")
            blocks.append({"type": "tool_use", "id": ids[-1], "name": draw(name), "input": draw(tool_input)})
        msgs.append({"role": "assistant", "content": blocks})
        reply: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": i, "content": draw(tool_result_content)} for i in ids
        ]
        reply += draw(st.lists(user_block, min_size=0 if ids else 1, max_size=2))
        msgs.append({"role": "user", "content": reply})
    return msgs


@st.composite
def messages_request(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": draw(st.integers(1, 4096)),
        "messages": draw(conversation()),
    }
    if draw(st.booleans()):
        doc["system"] = draw(text)
    tools = draw(st.lists(name, max_size=3, unique=True))
    if tools:
        doc["tools"] = [
            {"name": t, "description": draw(text), "input_schema": {"type": "object", "properties": {}}}
            if draw(st.booleans())
            else {"name": t, "input_schema": {"type": "object"}}
            for t in tools
        ]
        choice = draw(
            st.sampled_from(
                [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": tools[0]}]
            )
        )
        if draw(st.booleans()) and choice["type"] != "none":
            choice = {**choice, "disable_parallel_tool_use": True}
        doc["tool_choice"] = choice
    if draw(st.booleans()):
        doc["stop_sequences"] = draw(st.lists(text, min_size=1, max_size=3))
    if draw(st.booleans()):
        doc["temperature"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
    if draw(st.booleans()):
        doc["metadata"] = {"user_id": draw(text)}
    if draw(st.booleans()):
        doc["stream"] = draw(st.booleans())
    return doc


@settings(max_examples=200, deadline=None)
@given(messages_request())
def test_a_messages_request_survives_anthropic_to_openai_to_anthropic(doc: dict[str, Any]) -> None:
    chat = to_chat_request(doc)
    orjson.dumps(chat)  # a JSON document the upstream can be sent
    assert from_chat_request(chat) == doc


@st.composite
def chat_answer(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str, list[str]]], str, dict[str, int]]:
    texts = draw(st.lists(st.text(min_size=1, max_size=8), max_size=4))
    tools = []
    for i in range(draw(st.integers(0, 3))):
        args = orjson.dumps(draw(tool_input)).decode()
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
        pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
        tools.append((f"call_{i}", draw(name), [p for p in pieces if p]))
    finish = "tool_calls" if tools else draw(st.sampled_from(["stop", "length", "content_filter"]))
    prompt = draw(st.integers(1, 10_000))  # every request has input tokens
    usage = {"prompt_tokens": prompt, "completion_tokens": draw(st.integers(0, 10_000))}
    return texts, tools, finish, usage


@settings(max_examples=200, deadline=None)
@given(chat_answer(), st.lists(st.integers(1, 200), max_size=30))
def test_every_streamed_translation_is_a_valid_sequence_saying_what_the_unary_one_says(
    answer: tuple[list[str], list[tuple[str, str, list[str]]], str, dict[str, int]], cuts: list[int]
) -> None:
    texts, tools, finish, usage = answer
    whole = b"".join(chat_stream(texts, tools, finish, usage))
    pieces, at = [], 0
    for c in cuts:
        pieces.append(whole[at : at + c])
        at += c
    pieces.append(whole[at:])
    t = ChatStreamTranslator()
    out = b"".join(t.feed(p) for p in pieces) + t.flush()
    check_sequence([out])
    streamed, streamed_usage, error = assemble_message(json_events([out]))
    unary = from_chat_completion(
        {
            "id": "chatcmpl-1",
            "model": "gpt-x",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {
                        "role": "assistant",
                        "content": "".join(texts) or None,
                        "tool_calls": [
                            {"id": cid, "type": "function", "function": {"name": n, "arguments": "".join(p)}}
                            for cid, n, p in tools
                        ],
                    },
                }
            ],
            "usage": usage,
        }
    )
    assert error is None
    for k in ("id", "model", "content", "stop_reason", "stop_sequence", "usage"):
        assert streamed[k] == unary[k], k
    assert streamed_usage == unary["usage"]
