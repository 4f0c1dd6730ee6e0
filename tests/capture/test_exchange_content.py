"""The conversation and answer of an exchange as exporters show them (pure functions)."""

from __future__ import annotations

from accounting.capture.content import exchange_content
from accounting.export.otel import genai_messages
from accounting.record import ContentSource
from wire.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}


def test_chat_exchange_is_its_messages_and_one_message_per_choice() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    answer = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}]
    }
    c = exchange_content(CHAT, ContentSource({"messages": msgs}, answer, None))
    assert c is not None
    assert c.input == msgs
    assert c.output == [{"role": "assistant", "content": "yo", "finish_reason": "stop"}]


def test_streamed_chat_answer_is_reassembled() -> None:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}',
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}]}',
        b"data: [DONE]",
    ]
    c = exchange_content(CHAT, ContentSource({"messages": []}, None, events))
    assert c is not None
    assert [(m["content"], m["finish_reason"]) for m in c.output] == [("ab", "length")]


def test_completion_prompt_is_a_user_message_and_text_the_answer() -> None:
    answer = {"choices": [{"index": 0, "text": "42", "finish_reason": "stop"}]}
    c = exchange_content(COMPLETIONS, ContentSource({"prompt": "6*7="}, answer, None))
    assert c is not None
    assert c.input == [{"role": "user", "content": "6*7="}]
    assert c.output == [{"role": "assistant", "content": "42", "finish_reason": "stop"}]


def test_responses_instructions_input_items_and_tool_calls_become_chat_messages() -> None:
    request = {
        "instructions": "be terse",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "look it up"}]},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "found"},
        ],
    }
    answer = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "done"}]}]}
    c = exchange_content(RESPONSES, ContentSource(request, answer, None))
    assert c is not None
    assert [m["role"] for m in c.input] == ["system", "user", "assistant", "tool"]
    assert c.input[2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert c.input[3] == {"role": "tool", "tool_call_id": "c1", "content": "found"}
    assert c.output == [{"role": "assistant", "content": "done", "finish_reason": "stop"}]


def test_embeddings_have_no_conversation() -> None:
    assert exchange_content(EMBEDDINGS, ContentSource({"input": "x"}, {"data": []}, None)) is None


def test_genai_messages_use_text_tool_call_and_tool_response_parts() -> None:
    msgs = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": "u"}}],
        },
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    assert genai_messages(msgs) == [
        {"role": "user", "parts": [{"type": "text", "content": "q"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": '{"q": 1}'}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "r"}]},
    ]


def test_genai_output_messages_carry_finish_reason() -> None:
    out = genai_messages([{"role": "assistant", "content": "x", "finish_reason": "length"}], output=True)
    assert out == [
        {"role": "assistant", "parts": [{"type": "text", "content": "x"}], "finish_reason": "length"}
    ]
