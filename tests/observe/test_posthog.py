"""PostHog LLM analytics: ``$ai_generation`` / ``$ai_trace`` events checked against PostHog's documented
schema (https://posthog.com/docs/llm-analytics/manual-capture), batched to a fake capture endpoint."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.telemetry import FakeTelemetry
from tests.gateway_runner import RunningGateway
from tests.observe.client import chat

# PostHog's documented $ai_generation properties and their types (the ones pointsman fills in).
GENERATION_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "distinct_id": str,
    "$ai_trace_id": str,
    "$ai_span_id": str,
    "$ai_span_name": str,
    "$ai_model": str,
    "$ai_provider": str,
    "$ai_input_tokens": int,
    "$ai_output_tokens": int,
    "$ai_latency": float,
    "$ai_total_cost_usd": (int, float),
    "$ai_http_status": int,
    "$ai_is_error": bool,
    "$ai_stream": bool,
}
TRACE_ID = re.compile(r"^[A-Za-z0-9\-_~.@()!':|]+$")  # the documented $ai_trace_id alphabet


def posthog_config(upstream: FakeOpenAI, telemetry: FakeTelemetry, **ph: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = basic_config(upstream.url)
    cfg["observability"] = {
        "logs": {"enabled": False},
        "posthog": {"endpoint": telemetry.url, "project_key": "phc_test", "flush_interval_s": 0.05, **ph},
    }
    return cfg


def test_generation_event_follows_the_documented_schema(
    upstream: FakeOpenAI, telemetry: FakeTelemetry
) -> None:
    with RunningGateway(posthog_config(upstream, telemetry)) as gw:
        r = chat(gw)
        events = telemetry.wait_for("events", 2)
    assert telemetry.batches[0]["api_key"] == "phc_test"
    gen = next(e for e in events if e["event"] == "$ai_generation")
    assert gen["distinct_id"] == "app" and gen["timestamp"].endswith("Z") and gen["uuid"]
    p = gen["properties"]
    for name, typ in GENERATION_SCHEMA.items():
        assert isinstance(p[name], typ), (name, p.get(name))
    assert TRACE_ID.match(p["$ai_trace_id"])
    assert p["$ai_model"] == "gpt-4o-mini" and p["$ai_provider"] == "openai"
    assert (p["$ai_input_tokens"], p["$ai_output_tokens"]) == (11, 7)
    assert p["$ai_total_cost_usd"] == float(r.headers["x-pointsman-cost-usd"])
    assert p["$ai_http_status"] == 200 and p["$ai_is_error"] is False
    assert p["pointsman_request_id"] == r.headers["x-request-id"]
    assert p["pointsman_team"] == "search" and p["pointsman_route"] == "default"
    assert "$ai_input" not in p and "$ai_output_choices" not in p
    assert "secret prompt" not in str(events)


def test_trace_event_groups_the_request(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> None:
    with RunningGateway(posthog_config(upstream, telemetry)) as gw:
        chat(gw)
        events = telemetry.wait_for("events", 2)
    gen = next(e for e in events if e["event"] == "$ai_generation")
    trace = next(e for e in events if e["event"] == "$ai_trace")
    assert trace["properties"]["$ai_trace_id"] == gen["properties"]["$ai_trace_id"]
    assert isinstance(trace["properties"]["$ai_latency"], float)


def test_failed_request_is_an_error_generation(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> None:
    with RunningGateway(posthog_config(upstream, telemetry)) as gw:
        chat(gw, "fake-fail_500")
        events = telemetry.wait_for("events", 2)
    p = next(e for e in events if e["event"] == "$ai_generation")["properties"]
    assert p["$ai_is_error"] is True and p["$ai_error"] == "http_5xx" and p["$ai_http_status"] >= 500


def test_distinct_id_can_be_the_team(upstream: FakeOpenAI, telemetry: FakeTelemetry) -> None:
    with RunningGateway(posthog_config(upstream, telemetry, distinct_id="team")) as gw:
        chat(gw)
        events = telemetry.wait_for("events", 2)
    assert {e["distinct_id"] for e in events} == {"search"}
