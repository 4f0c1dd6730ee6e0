"""The OTLP bytes pointsman writes itself (``accounting.export.otlp_proto``) are what the official bindings
serialise for the same messages."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from accounting.export import otlp_proto as p


def _kv(key: str, value: str | bool | int | float) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@pytest.mark.parametrize("value", ["", "é" * 100, True, False, 0, 7, 300, -1, 2**40, 0.0, 1.5, -2.25e300])
def test_a_key_value_is_the_official_serialisation(value: str | bool | int | float) -> None:
    assert (
        p.key_value("gen_ai.request.model", value) == _kv("gen_ai.request.model", value).SerializeToString()
    )


@pytest.mark.parametrize("value", ["", "req-1", "é" * 63, "x" * 127, "x" * 128, "é" * 5000, "x" * 20000])
def test_a_fixed_key_string_attribute_is_the_official_serialisation_at_every_length(value: str) -> None:
    attr = p.Attr("pointsman.request_id")
    official = _attribute(_kv("pointsman.request_id", value))
    assert attr.string(value) == official  # its head written
    assert attr.string(value) == official  # its head cached


@pytest.mark.parametrize("value", [0, 1, 127, 128, 4095, 4096, 16383, 16384, 2**40, 2**63 - 1, -1, -(2**63)])
def test_a_fixed_key_int_attribute_is_the_official_serialisation(value: int) -> None:
    assert p.Attr("gen_ai.usage.input_tokens").integer(value) == _attribute(
        _kv("gen_ai.usage.input_tokens", value)
    )


@pytest.mark.parametrize("value", [0.0, 0.00042, -2.25e300, float("inf")])
def test_a_fixed_key_double_attribute_is_the_official_serialisation(value: float) -> None:
    assert p.Attr("pointsman.cost_usd").double(value) == _attribute(_kv("pointsman.cost_usd", value))


def _attribute(kv: KeyValue) -> bytes:
    """``kv`` as one ``Span.attributes`` entry (field 9, length-delimited), as the official bindings write it."""
    one = Span(attributes=[kv]).SerializeToString()
    assert one[0] == 0x4A
    return one


@pytest.mark.parametrize("parent", [b"", bytes(range(8))])
@pytest.mark.parametrize("error", [None, "", "upstream_timeout"])
def test_an_export_request_is_the_official_serialisation(parent: bytes, error: str | None) -> None:
    trace_id, span_id = bytes(range(16)), bytes(range(8, 16))
    mine = p.export_request(
        [
            p.span(
                trace_id,
                span_id,
                parent,
                p.head("chat gpt-4o-mini", p.SPAN_KIND_SERVER),
                1_700_000_000_000_000_000,
                1_700_000_000_250_000_000,
                [
                    p.attr("pointsman.stream", True),
                    p.Attr("pointsman.request_id").string("req-1"),
                    p.Attr("gen_ai.usage.input_tokens").integer(1234),
                    p.Attr("pointsman.cost_usd").double(0.00042),
                    p.status(error),
                ],
            )
        ],
        [p.key_value("service.name", "pointsman")],
        "pointsman",
    )
    official = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name="chat gpt-4o-mini",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_250_000_000,
        attributes=[
            _kv("pointsman.stream", True),
            _kv("pointsman.request_id", "req-1"),
            _kv("gen_ai.usage.input_tokens", 1234),
            _kv("pointsman.cost_usd", 0.00042),
        ],
        status=Status() if error is None else Status(code=Status.STATUS_CODE_ERROR, message=error),
    )
    expected = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[_kv("service.name", "pointsman")]),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="pointsman"), spans=[official])],
            )
        ]
    )
    assert mine == expected.SerializeToString()
