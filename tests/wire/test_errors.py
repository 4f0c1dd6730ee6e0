"""The OpenAI error shape, in a body and as the event that ends a failed stream."""

from __future__ import annotations

import orjson

from wire.answer import assemble
from wire.errors import error_body, error_event, event_error


def test_error_body_has_the_openai_shape() -> None:
    assert orjson.loads(error_body("nope", "invalid_request_error", "bad", "model")) == {
        "error": {"message": "nope", "type": "invalid_request_error", "param": "model", "code": "bad"}
    }


def test_chat_stream_error_event_is_an_error_body_then_done() -> None:
    ev = error_event("chat/completions", "gone", "upstream_error", "upstream_timeout")
    assert (
        ev == b"data: " + error_body("gone", "upstream_error", "upstream_timeout") + b"\n\ndata: [DONE]\n\n"
    )


def test_responses_stream_error_event_is_a_named_error_event() -> None:
    ev = error_event("responses", "gone", "upstream_error", "upstream_timeout")
    assert ev.startswith(b"event: error\ndata: ") and ev.endswith(b"\n\n")
    assert orjson.loads(ev.split(b"data: ", 1)[1]) == {
        "type": "error",
        "code": "upstream_timeout",
        "message": "gone",
        "param": None,
    }


def test_error_events_read_back_as_their_message() -> None:
    for endpoint in ("chat/completions", "completions", "responses"):
        assert assemble(endpoint, [error_event(endpoint, "gone", "upstream_error", "x")]).error == "gone"


def test_only_error_events_are_errors() -> None:
    assert event_error({"choices": [], "error": None}) is None
    assert event_error({"type": "response.output_text.delta"}) is None
    assert event_error({"error": "plain"}) == "plain"


def test_error_body_detail_fields_follow_the_standard_ones() -> None:
    body = orjson.loads(error_body("busy", "invalid_request_error", "conflict", detail={"stage": 2}))
    assert (
        list(body["error"]) == ["message", "type", "param", "code", "stage"] and body["error"]["stage"] == 2
    )


def test_responses_stream_error_event_continues_the_sequence() -> None:
    ev = error_event("responses", "gone", "upstream_error", "upstream_timeout", sequence_number=7)
    assert orjson.loads(ev.split(b"data: ", 1)[1])["sequence_number"] == 7
