"""Captured requests of other endpoints in the chat format fine-tuning takes (``accounting.capture.chat_format``)."""

from __future__ import annotations

from accounting.capture.chat_format import to_chat
from wire.endpoints import COMPLETIONS, RESPONSES


def test_a_responses_input_with_a_tool_round_becomes_the_same_conversation_in_chat_messages() -> None:
    request = {
        "instructions": "Answer briefly.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Use tools."}],
            },
            {"type": "message", "role": "user", "content": "What is 6 x 7?"},
            {"type": "function_call", "call_id": "c1", "name": "multiply", "arguments": '{"a": 6, "b": 7}'},
            {"type": "function_call_output", "call_id": "c1", "output": 42},
        ],
        "parallel_tool_calls": False,
    }
    assert to_chat(RESPONSES, request) == (
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "What is 6 x 7?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "multiply", "arguments": '{"a": 6, "b": 7}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        None,
        False,
    )


def test_a_responses_input_item_with_no_chat_equivalent_is_not_converted() -> None:
    assert to_chat(RESPONSES, {"input": [{"type": "web_search_call", "id": "ws_1"}]}) is None
    assert to_chat(RESPONSES, {"input": ["not an item"]}) is None
    assert to_chat(RESPONSES, {"input": 7}) is None


def test_a_prompt_of_one_string_becomes_a_user_message() -> None:
    assert to_chat(RESPONSES, {"input": "hello"}) == ([{"role": "user", "content": "hello"}], None, None)
    assert to_chat(COMPLETIONS, {"prompt": ["Say hi"]}) == (
        [{"role": "user", "content": "Say hi"}],
        None,
        None,
    )
    assert to_chat(COMPLETIONS, {"prompt": ["a", "b"]}) is None
