"""OpenTelemetry export: spans decoded with the official OTLP protobuf definitions by a real collector fake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.telemetry import FakeTelemetry
from tests.gateway_runner import RunningGateway
from tests.observe.client import chat

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def traced_config(upstream: FakeOpenAI, telemetry: FakeTelemetry, **traces: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = basic_config(upstream.url)
    cfg["keys"] = [{"name": "app", "key": CLIENT_KEY, "team": "search", "tags": {"task": "summarize"}}]
    cfg["backends"]["dead"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "connect_timeout_s": 1}
    cfg["models"]["dead-model"] = {"backend": "dead"}
    cfg["routes"] = [
        {
            "name": "fallback",
            "match": {"model": "dead-model"},
            "targets": [{"model": "dead-model"}],
            "fallbacks": ["gpt-4o-mini"],
        },
        {"name": "main", "match": {"model": "gpt-4o-mini"}, "targets": [{"model": "gpt-4o-mini"}]},
    ]
    cfg["observability"] = {
        "traces": {"endpoint": telemetry.url, "flush_interval_s": 0.05, **traces},
        "logs": {"enabled": False},
    }
    return cfg


@pytest.fixture
def gateway(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> Iterator[RunningGateway]:
    with RunningGateway(traced_config(upstream, telemetry)) as gw:
        yield gw


def server_span(t: FakeTelemetry) -> Any:
    spans = t.wait_for("spans", 2)
    return next(s for s in spans if s.span.kind == Span.SPAN_KIND_SERVER)


def test_request_span_carries_genai_and_pointsman_attributes(
    gateway: RunningGateway, telemetry: FakeTelemetry
) -> None:
    r = chat(gateway)
    assert r.status_code == 200
    s = server_span(telemetry)
    assert telemetry.content_types == ["application/x-protobuf"]
    assert s.resource["service.name"] == "pointsman"
    assert s.span.name == "chat gpt-4o-mini"
    assert s.attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "pointsman.request_id": r.headers["x-request-id"],
        "pointsman.route": "main",
        "pointsman.task": "summarize",
        "pointsman.team": "search",
        "pointsman.key": "app",
        "pointsman.backend": "up",
        "pointsman.endpoint": "chat/completions",
        "pointsman.stream": False,
        "pointsman.outcome": "ok",
        "pointsman.cost_usd": float(r.headers["x-pointsman-cost-usd"]),
        "http.response.status_code": 200,
    }
    assert s.span.status.code == Status.STATUS_CODE_UNSET
    assert s.span.end_time_unix_nano > s.span.start_time_unix_nano
    assert not any("secret prompt" in str(v) for v in s.attrs.values())


def test_each_upstream_attempt_is_a_child_span_whose_id_went_upstream_as_traceparent(
    gateway: RunningGateway, telemetry: FakeTelemetry, upstream: FakeOpenAI
) -> None:
    assert chat(gateway).status_code == 200
    spans = telemetry.wait_for("spans", 2)
    root = next(s for s in spans if s.span.kind == Span.SPAN_KIND_SERVER)
    (child,) = [s for s in spans if s.span.kind == Span.SPAN_KIND_CLIENT]
    assert child.trace_id == root.trace_id and child.parent_id == root.span_id
    assert child.attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "pointsman.backend": "up",
        "pointsman.call": "attempt",
        "http.response.status_code": 200,
    }
    assert upstream.requests[-1].headers["traceparent"] == f"00-{root.trace_id}-{child.span_id}-01"


def test_client_traceparent_is_the_parent_and_propagates_upstream(
    gateway: RunningGateway, telemetry: FakeTelemetry, upstream: FakeOpenAI
) -> None:
    assert chat(gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01").status_code == 200
    root = server_span(telemetry)
    assert root.trace_id == CLIENT_TRACE and root.parent_id == CLIENT_SPAN
    sent = upstream.requests[-1].headers["traceparent"]
    assert sent.startswith(f"00-{CLIENT_TRACE}-") and sent.endswith("-01")


def test_client_unsampled_traceparent_exports_nothing_but_still_propagates(
    gateway: RunningGateway, telemetry: FakeTelemetry, upstream: FakeOpenAI
) -> None:
    assert chat(gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00").status_code == 200
    assert chat(gateway).status_code == 200  # sampled: proves the exporter ran
    spans = telemetry.wait_for("spans", 2)
    assert all(s.trace_id != CLIENT_TRACE for s in spans)
    assert upstream.requests[0].headers["traceparent"].endswith("-00")


def test_failed_attempt_and_fallback_show_as_error_child_then_served_child(
    gateway: RunningGateway, telemetry: FakeTelemetry
) -> None:
    assert chat(gateway, model="dead-model").status_code == 200
    spans = telemetry.wait_for("spans", 3)
    root = next(s for s in spans if s.span.kind == Span.SPAN_KIND_SERVER)
    assert root.attrs["pointsman.fallbacks"] == 1 and root.attrs["pointsman.route"] == "fallback"
    children = sorted(
        (s for s in spans if s.span.kind == Span.SPAN_KIND_CLIENT), key=lambda s: s.span.start_time_unix_nano
    )
    assert [c.attrs["pointsman.backend"] for c in children] == ["dead", "up"]
    assert children[0].attrs["error.type"] == "connect"
    assert children[0].span.status.code == Status.STATUS_CODE_ERROR
    assert "error.type" not in children[1].attrs


def test_upstream_error_marks_the_request_span_as_error(
    gateway: RunningGateway, telemetry: FakeTelemetry, upstream: FakeOpenAI
) -> None:
    r = chat(gateway, model="fake-fail_400")
    assert r.status_code == 400
    root = server_span(telemetry)
    assert root.attrs["http.response.status_code"] == 400
    assert root.attrs["error.type"]
    assert root.span.status.code == Status.STATUS_CODE_ERROR


def test_streamed_request_span_has_ttft_and_usage(gateway: RunningGateway, telemetry: FakeTelemetry) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        list(
            c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    root = server_span(telemetry)
    assert root.attrs["pointsman.stream"] is True
    assert root.attrs["gen_ai.usage.output_tokens"] == 7
    assert 0 < root.attrs["pointsman.time_to_first_token_s"]


def test_sample_rate_zero_exports_no_new_traces(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> None:
    with RunningGateway(traced_config(upstream, telemetry, sample_rate=0.0)) as gw:
        for _ in range(5):
            assert chat(gw).status_code == 200
        assert chat(gw, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01").status_code == 200
        spans = telemetry.wait_for("spans", 2)
    assert {s.trace_id for s in spans} == {CLIENT_TRACE}
    assert all(r.headers["traceparent"].endswith("-00") for r in upstream.requests[:5])


def test_shadow_call_is_a_child_span_of_the_request_and_carries_its_traceparent(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    cfg = traced_config(upstream, telemetry)
    cfg["models"]["cand"] = {"backend": "up", "upstream_model": "fake-cand"}
    cfg["routes"][1]["shadow"] = {"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]}
    with RunningGateway(cfg) as gw:
        assert chat(gw).status_code == 200
        spans = telemetry.wait_for("spans", 3)
    root = next(s for s in spans if s.span.kind == Span.SPAN_KIND_SERVER)
    shadow = next(s for s in spans if s.attrs.get("pointsman.call") == "shadow")
    assert shadow.trace_id == root.trace_id and shadow.parent_id == root.span_id
    assert shadow.span.name == "shadow chat cand" and shadow.attrs["pointsman.shadow"] is True
    assert shadow.attrs["gen_ai.response.model"] == "fake-cand"
    sent = next(r for r in upstream.requests if r.body["model"] == "fake-cand").headers["traceparent"]
    assert sent == f"00-{root.trace_id}-{shadow.span_id}-01"
