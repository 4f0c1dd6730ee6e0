from __future__ import annotations

import pytest

from wire.traceparent import TraceContext, end_span, format_traceparent, parse_traceparent

T = "4bf92f3577b34da6a3ce929d0e0e4736"
S = "00f067aa0ba902b7"


def test_a_valid_header_parses_with_its_sampled_flag() -> None:
    assert parse_traceparent(f"00-{T}-{S}-01") == (T, S, True)
    assert parse_traceparent(f"00-{T}-{S}-00".encode()) == (T, S, False)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        f"ff-{T}-{S}-01",
        f"00-{'0' * 32}-{S}-01",
        f"00-{T}-{'0' * 16}-01",
        f"00-{T.upper()}-{S}-01",
        f"00-{T[:-1]}-{S}-01",
        f"00-{T}-{S}-01-extra",
        "garbage",
    ],
)
def test_invalid_headers_are_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_with_more_fields_is_read() -> None:
    assert parse_traceparent(f"01-{T}-{S}-01-whatever") == (T, S, True)


def test_child_spans_carry_their_own_id_upstream() -> None:
    tc = TraceContext(T, S, None, True)
    span = tc.child("attempt", "up", "m")
    assert tc.header(span) == format_traceparent(T, span.span_id, True) == f"00-{T}-{span.span_id}-01"
    assert span.span_id != S and tc.children == [span]
    end_span(span, "timeout", 0)
    assert span.end_ns >= span.start_ns and span.error == "timeout"


def test_a_derived_context_is_a_child_of_the_request_span() -> None:
    tc = TraceContext(T, S, None, False)
    d = tc.derived()
    assert (d.trace_id, d.parent_span_id, d.sampled) == (T, S, False) and d.span_id != S
