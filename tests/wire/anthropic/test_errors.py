"""Anthropic's error shape, status codes and stream error event."""

from __future__ import annotations

import orjson

from wire.anthropic.errors import (
    anthropic_status,
    error_body,
    error_event,
    error_of,
    error_type,
    type_of_openai,
)
from wire.errors import error_event as any_error_event


def test_error_body_has_anthropics_shape() -> None:
    assert orjson.loads(error_body("nope", "invalid_request_error")) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "nope"},
    }


def test_each_status_has_anthropics_error_type() -> None:
    got = {s: error_type(s) for s in (400, 401, 403, 404, 413, 429, 500, 502, 504, 529, 418)}
    assert got == {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
        418: "invalid_request_error",
    }


def test_statuses_anthropic_spells_differently_are_mapped() -> None:
    assert (anthropic_status(431), anthropic_status(503), anthropic_status(429)) == (413, 529, 429)


def test_stream_error_event_is_a_named_error_event_read_back_by_error_of() -> None:
    ev = error_event("gone", "api_error")
    assert ev.startswith(b"event: error\ndata: ") and ev.endswith(b"\n\n")
    assert error_of(orjson.loads(ev.split(b"data: ", 1)[1])) == ("api_error", "gone")


def test_the_messages_endpoint_ends_a_failed_stream_with_anthropics_event() -> None:
    ev = any_error_event("messages", "slow", "timeout_error", "upstream_timeout")
    assert ev == error_event("slow", "timeout_error")
    assert type_of_openai("upstream_error") == "api_error"
