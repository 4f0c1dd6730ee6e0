"""A Chat Completions answer said as a Messages API answer: content, stop reason, usage."""

from __future__ import annotations

from typing import Any

import pytest

from wire.anthropic.from_chat import from_chat_completion, usage


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}},
    }


def test_text_and_tool_calls_become_blocks_with_the_usage_split_into_uncached_and_cache_reads() -> None:
    doc = completion(
        {
            "content": "Let me check.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        "tool_calls",
    )
    assert from_chat_completion(doc) == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 8},
    }


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),
        ("stop", {"stop_reason": 128001}, "end_turn", None),
    ],
)
def test_stop_reasons(finish: str, extra: dict[str, Any], reason: str, sequence: str | None) -> None:
    msg = from_chat_completion(completion({"content": "x"}, finish, **extra), ["END"])
    assert (msg["stop_reason"], msg["stop_sequence"]) == (reason, sequence)


def test_arguments_that_are_not_a_json_object_are_kept_as_given() -> None:
    doc = completion(
        {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{broken"}}]}, "tool_calls"
    )
    assert from_chat_completion(doc)["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": "{broken"}
    ]


def test_missing_usage_is_zero() -> None:
    assert usage(None) == {"input_tokens": 0, "output_tokens": 0}
