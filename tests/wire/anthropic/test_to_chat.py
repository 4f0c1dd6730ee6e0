"""A Messages request said as a Chat Completions request; what has no equivalent is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from wire.anthropic.to_chat import answer_message, to_chat_request
from wire.anthropic.untranslatable import Untranslatable


def req(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def test_system_blocks_become_one_system_message_and_sampling_passes() -> None:
    chat = to_chat_request(
        req(
            system=[
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
            ],
            temperature=0.5,
            top_p=0.9,
            top_k=5,
            stream=True,
            stop_sequences=["END"],
        )
    )
    assert chat == {
        "model": "m",
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be brief.\n\nBe kind."},
            {"role": "user", "content": "hi"},
        ],
        "max_completion_tokens": 64,
        "stop": ["END"],
    }


def test_images_and_documents_become_content_parts() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
    ]
    chat = to_chat_request(req(messages=[{"role": "user", "content": content}]))
    assert chat["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "text", "text": "plain doc"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER"}},
    ]


def test_tools_choice_and_a_tool_round_trip_become_functions_calls_and_tool_messages() -> None:
    chat = to_chat_request(
        req(
            tools=[{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"},
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
        )
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
        }
    ]
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("required", False)
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
    ]


@pytest.mark.parametrize(
    ("choice", "chat"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice_kinds(choice: dict[str, Any], chat: Any) -> None:
    assert to_chat_request(req(tool_choice=choice))["tool_choice"] == chat


def test_metadata_user_id_is_the_chat_user_and_the_other_members_stay_metadata() -> None:
    chat = to_chat_request(req(metadata={"user_id": "u-1", "task": "summarize"}))
    assert (chat["user"], chat["metadata"]) == ("u-1", {"task": "summarize"})


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (req(thinking={"type": "enabled", "budget_tokens": 2048}), "thinking"),
        (req(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
        (req(mcp_servers=[]), "mcp_servers"),
        (req(service_tier="standard_only"), "service_tier"),
        (
            req(
                messages=[
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
                    }
                ]
            ),
            "messages[0].content[0]",
        ),
        (
            req(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": True}
                        ],
                    }
                ]
            ),
            "messages[0].content[0].is_error",
        ),
        (
            req(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                            }
                        ],
                    }
                ]
            ),
            "messages[0].content[0].content[0]",
        ),
        (
            req(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0].source.type",
        ),
        (
            req(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "citations": []}]}]),
            "messages[0].content[0].citations",
        ),
    ],
)
def test_what_has_no_chat_equivalent_is_refused_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(Untranslatable) as info:
        to_chat_request(doc)
    assert info.value.field == field
    assert field in str(info.value)


def test_disabled_thinking_and_auto_tier_are_the_chat_defaults() -> None:
    chat = to_chat_request(req(thinking={"type": "disabled"}, service_tier="auto"))
    assert "thinking" not in chat and "service_tier" not in chat


def test_an_answer_becomes_one_chat_assistant_message_without_its_thinking() -> None:
    msg = {
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Sure.", "citations": None},
            {"type": "tool_use", "id": "tu_1", "name": "f", "input": {}},
        ]
    }
    assert answer_message(msg) == {
        "role": "assistant",
        "content": "Sure.",
        "tool_calls": [{"id": "tu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert answer_message({"content": [{"type": "thinking", "thinking": "hm"}]}) is None
