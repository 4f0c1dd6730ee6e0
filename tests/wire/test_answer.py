"""One answer out of a stream: chat and completions choices, tool-call deltas, Responses API output."""

from __future__ import annotations

from typing import Any

import orjson

from wire.answer import assemble


def sse(*docs: dict[str, Any], done: bool = True) -> list[bytes]:
    """One relayed block per event, as the relay records them."""
    blocks = [b"data: " + orjson.dumps(d) + b"\n\n" for d in docs]
    return blocks + [b"data: [DONE]\n\n"] if done else blocks


def chunk(delta: dict[str, Any], index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def ev(kind: str, **data: Any) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def test_chat_content_deltas_become_one_message() -> None:
    a = assemble(
        "chat/completions",
        sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, finish="stop"),
        ),
    )
    assert a.body == {
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello"}}
        ]
    }
    assert a.usage is None and a.error is None


def test_chat_tool_call_deltas_merge_by_index_with_their_ids() -> None:
    a = assemble(
        "chat/completions",
        sse(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Oslo"}'}}]}),
            chunk({}, finish="tool_calls"),
        ),
    )
    msg = a.body["choices"][0]["message"]
    assert msg["content"] is None and a.body["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


def test_chat_choices_are_kept_apart_by_index() -> None:
    a = assemble(
        "chat/completions",
        sse(
            chunk({"content": "b"}, index=1),
            chunk({"content": "a"}, index=0),
            chunk({"content": "!"}, index=1),
        ),
    )
    assert [(c["index"], c["message"]["content"]) for c in a.body["choices"]] == [(0, "a"), (1, "b!")]


def test_chat_refusal_and_reasoning_deltas_are_kept() -> None:
    a = assemble(
        "chat/completions",
        sse(chunk({"reasoning_content": "think"}), chunk({"refusal": "no"}), chunk({"refusal": "pe"})),
    )
    msg = a.body["choices"][0]["message"]
    assert (msg["refusal"], msg["reasoning_content"], msg["content"]) == ("nope", "think", None)


def test_stream_usage_is_the_last_reported() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    a = assemble("chat/completions", sse(chunk({"content": "x"}), {"choices": [], "usage": usage}))
    assert a.usage == usage and len(a.body["choices"]) == 1


def test_completions_text_is_concatenated() -> None:
    a = assemble(
        "completions",
        sse(
            {"choices": [{"index": 0, "text": "a"}]},
            {"choices": [{"index": 0, "text": "b", "finish_reason": "length"}]},
        ),
    )
    assert a.body == {"choices": [{"index": 0, "finish_reason": "length", "text": "ab"}]}


def test_several_events_in_one_block_with_crlf_framing() -> None:
    block = b"".join(sse(chunk({"content": "a"}), chunk({"content": "b"}))).replace(b"\n", b"\r\n")
    assert assemble("chat/completions", [block]).body["choices"][0]["message"]["content"] == "ab"


def test_an_error_event_is_noted_and_the_partial_answer_kept() -> None:
    a = assemble(
        "chat/completions", sse(chunk({"content": "par"}), {"error": {"message": "upstream closed"}})
    )
    assert a.error == "upstream closed" and a.body["choices"][0]["message"]["content"] == "par"


def test_responses_answer_is_the_completed_response() -> None:
    done = {
        "object": "response",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello!"}]}],
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    a = assemble(
        "responses",
        [
            ev("response.output_text.delta", output_index=0, content_index=0, delta="Hel"),
            ev("response.completed", response=done),
        ],
    )
    assert a.body == done and a.usage == done["usage"]


def test_responses_incomplete_response_is_the_answer_too() -> None:
    resp = {
        "status": "incomplete",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
    }
    assert assemble("responses", [ev("response.incomplete", response=resp)]).body == resp


def test_responses_stream_cut_off_is_rebuilt_from_its_items_and_deltas() -> None:
    events = [
        ev(
            "response.output_item.added",
            output_index=0,
            item={"type": "message", "role": "assistant", "content": []},
        ),
        ev("response.output_text.delta", output_index=0, content_index=0, delta="Hel"),
        ev("response.output_text.delta", output_index=0, content_index=0, delta="lo"),
        ev(
            "response.output_item.added",
            output_index=1,
            item={"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": ""},
        ),
        ev("response.function_call_arguments.delta", output_index=1, delta='{"q":'),
        ev("response.function_call_arguments.delta", output_index=1, delta=" 1}"),
    ]
    assert assemble("responses", events).body == {
        "object": "response",
        "output": [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": 1}'},
        ],
    }


def test_responses_deltas_without_their_item_still_make_a_message() -> None:
    events = [ev("response.output_text.delta", delta="a"), ev("response.output_text.delta", delta="b")]
    assert assemble("responses", events).body["output"] == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ab"}]}
    ]


def test_responses_done_item_replaces_what_its_deltas_built() -> None:
    item = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "final"}]}
    events = [
        ev("response.output_text.delta", output_index=0, delta="fin"),
        ev("response.output_item.done", output_index=0, item=item),
    ]
    assert assemble("responses", events).body["output"] == [item]


def test_responses_reasoning_summary_deltas_are_kept() -> None:
    events = [ev("response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="think")]
    assert assemble("responses", events).body["output"] == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]}
    ]
