"""A Chat Completions stream said as a Messages API stream, in an order Anthropic's clients accept."""

from __future__ import annotations

import orjson

from tests.wire.anthropic.chat_stream import chat_stream, chunk
from tests.wire.anthropic.event_order import check_sequence
from wire.anthropic.answer import assemble_message
from wire.anthropic.stream import ChatStreamTranslator
from wire.sse import json_events


def translate(pieces: list[bytes], stops: tuple[str, ...] = ()) -> tuple[bytes, ChatStreamTranslator]:
    t = ChatStreamTranslator(stops)
    out = b"".join(t.feed(p) for p in pieces) + t.flush()
    return out, t


def test_text_stream_has_anthropics_event_sequence_with_usage_at_the_end() -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": 3}
    out, t = translate(chat_stream(["Hel", "lo"], usage=usage))
    events = check_sequence([out])
    assert [n for n, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert t.finished
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 11, "output_tokens": 3},
    }


def test_text_then_tool_calls_become_one_block_each_with_json_deltas() -> None:
    pieces = chat_stream(
        ["Checking."], [("call_1", "f", ['{"a":', " 1}"]), ("call_2", "g", ["{}"])], "tool_calls"
    )
    out, _ = translate(pieces)
    check_sequence([out])
    message, _, error = assemble_message(json_events([out]))
    assert error is None
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_events_split_anywhere_translate_the_same() -> None:
    whole = b"".join(chat_stream(["a", "b"], usage={"prompt_tokens": 1, "completion_tokens": 2}))
    at_once, _ = translate([whole])
    byte_by_byte, _ = translate([whole[i : i + 1] for i in range(len(whole))])
    assert at_once == byte_by_byte


def test_a_stream_cut_off_before_done_has_no_message_stop() -> None:
    out, t = translate(chat_stream(["a"], done=False))
    check_sequence([out], complete=False)
    assert not t.finished and b"message_stop" not in out


def test_an_upstream_error_chunk_ends_the_stream_with_an_error_event() -> None:
    err = b"data: " + orjson.dumps({"error": {"message": "boom", "type": "server_error"}}) + b"\n\n"
    out, t = translate([chunk({"content": "a"}), err, chunk({"content": "ignored"})])
    events = check_sequence([out], complete=False)
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})
    assert t.finished and b"ignored" not in out


def test_interleaved_tool_arguments_end_with_an_error_rather_than_an_invalid_sequence() -> None:
    def call(i: int, args: str, cid: str | None = None) -> bytes:
        tc: dict[str, object] = {"index": i, "function": {"arguments": args}}
        if cid:
            tc.update(id=cid, function={"name": "f", "arguments": args})
        return chunk({"tool_calls": [tc]})

    out, _ = translate([call(0, "{", "c0"), call(1, "{", "c1"), call(0, "}")])
    events = check_sequence([out], complete=False)
    assert events[-1][0] == "error"


def test_a_vllm_stop_reason_naming_a_stop_sequence_is_stop_sequence() -> None:
    out, _ = translate(
        [
            chunk({"content": "x"}),
            chunk(
                {},
                "stop",
            ),
            b"data: [DONE]\n\n",
        ],
        ("END",),
    )
    assert b'"stop_reason":"end_turn"' in out
    named = chunk({}, "stop").replace(
        b'"finish_reason":"stop"', b'"finish_reason":"stop","stop_reason":"END"'
    )
    out, _ = translate([chunk({"content": "x"}), named, b"data: [DONE]\n\n"], ("END",))
    assert b'"stop_reason":"stop_sequence","stop_sequence":"END"' in out


def test_an_empty_stream_that_is_done_is_still_a_whole_message() -> None:
    out, _ = translate([b"data: [DONE]\n\n"])
    check_sequence([out])
