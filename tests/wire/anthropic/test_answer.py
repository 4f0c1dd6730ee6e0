"""A Messages API stream put back together into its message."""

from __future__ import annotations

from typing import Any

import orjson

from wire.answer import assemble


def ev(kind: str, **data: Any) -> bytes:
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def test_blocks_stop_reason_and_cumulative_usage_are_reassembled() -> None:
    blocks = [
        ev(
            "message_start",
            message={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1},
            },
        ),
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig"}),
        ev("content_block_stop", index=0),
        ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hi"}),
        ev("content_block_stop", index=1),
        ev(
            "content_block_start",
            index=2,
            content_block={"type": "tool_use", "id": "t", "name": "f", "input": {}},
        ),
        ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"x"'}),
        ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": ": 2}"}),
        ev("content_block_stop", index=2),
        ev(
            "message_delta",
            delta={"stop_reason": "tool_use", "stop_sequence": None},
            usage={"output_tokens": 7},
        ),
        ev("message_stop"),
    ]
    answer = assemble("messages", blocks)
    assert answer.body["content"] == [
        {"type": "thinking", "thinking": "hm", "signature": "sig"},
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 2}},
    ]
    assert answer.body["stop_reason"] == "tool_use" and answer.body["id"] == "msg_1"
    assert answer.usage == {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 7}
    assert answer.error is None


def test_an_error_event_is_noted() -> None:
    answer = assemble("messages", [ev("error", error={"type": "overloaded_error", "message": "Overloaded"})])
    assert answer.error == "Overloaded"
