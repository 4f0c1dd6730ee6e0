"""How the fake model decides its answer from the request (both API spellings)."""

from __future__ import annotations

import orjson

from tests.fakes.openai_answers import decide

TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
MSG = [{"role": "user", "content": "hi"}]


def test_plain_request_gets_the_text() -> None:
    a = decide({"messages": MSG}, "hello")
    assert (a.text, a.tool_calls, a.finish_reason) == ("hello", [], "stop")


def test_offered_tool_is_called_with_arguments_from_its_schema() -> None:
    a = decide({"messages": MSG, "tools": [{"type": "function", "function": TOOL}]}, "hello")
    assert a.text is None and a.finish_reason == "tool_calls"
    assert (a.tool_calls[0].name, orjson.loads(a.tool_calls[0].arguments)) == ("lookup", {"q": "sample"})


def test_responses_api_tools_and_named_tool_choice() -> None:
    other = {"type": "function", "name": "other", "parameters": {"type": "object"}}
    body = {
        "input": "hi",
        "tools": [{"type": "function", **TOOL}, other],
        "tool_choice": {"type": "function", "name": "other"},
    }
    assert decide(body, "hello").tool_calls[0].name == "other"


def test_tool_choice_none_answers_text() -> None:
    assert (
        decide(
            {"messages": MSG, "tools": [{"type": "function", "function": TOOL}], "tool_choice": "none"}, "t"
        ).text
        == "t"
    )


def test_a_tool_result_ends_the_loop_with_text_quoting_it() -> None:
    chat = [*MSG, {"role": "tool", "tool_call_id": "c", "content": "42"}]
    assert (
        decide({"messages": chat, "tools": [{"type": "function", "function": TOOL}]}, "t").text
        == "The tool said: 42"
    )
    items = [
        {"role": "user", "content": "hi"},
        {"type": "function_call_output", "call_id": "c", "output": "42"},
    ]
    assert decide({"input": items, "tools": [{"type": "function", **TOOL}]}, "t").text == "The tool said: 42"


def test_json_schema_format_answers_conforming_json() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    chat = decide(
        {
            "messages": MSG,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        },
        "t",
    )
    resp = decide(
        {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}}}, "t"
    )
    assert orjson.loads(chat.text or "") == orjson.loads(resp.text or "") == {"n": 1}


def test_json_object_format_answers_an_object() -> None:
    assert orjson.loads(
        decide({"messages": MSG, "response_format": {"type": "json_object"}}, "t").text or ""
    ) == {"answer": "t"}


def test_later_choices_differ() -> None:
    assert decide({"messages": MSG}, "t", 1).text == "t (choice 1)"
