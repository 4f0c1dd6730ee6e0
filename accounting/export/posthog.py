"""LLM-analytics events in PostHog's format, batched to a PostHog-compatible capture endpoint.

Every finished request is one ``$ai_generation`` event; a client request (not its shadow or comparator calls)
also gets an ``$ai_trace`` event that groups it with them. The property mapping is documented in
docs/observability.md. Prompt and answer text (``$ai_input``, ``$ai_output_choices``) are sent only when
``posthog.content`` is on and the team is approved for data capture (redacted like captured traces).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from accounting.capture.content import ExchangeContent
from accounting.catalog import BackendFacts
from accounting.export.batcher import Dropped
from accounting.export.config import PostHogConfig
from accounting.export.http_exporter import HttpExporter, endpoint_url
from accounting.export.otel import Content, provider_name
from accounting.record import RequestRecord


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1_000_000):06d}Z"


def generation_event(
    rec: RequestRecord,
    backends: dict[str, BackendFacts],
    distinct_id: str,
    content: ExchangeContent | None = None,
) -> dict[str, Any]:
    """The ``$ai_generation`` event of one finished request."""
    tc = rec.trace
    u = rec.usage
    failed = rec.outcome != "ok"
    props: dict[str, Any] = {
        "distinct_id": distinct_id,
        "$ai_trace_id": tc.trace_id if tc is not None else rec.request_id,
        "$ai_span_id": tc.span_id if tc is not None else rec.request_id,
        "$ai_span_name": rec.route,
        "$ai_model": rec.upstream_model or rec.requested_model,
        "$ai_provider": provider_name(backends.get(rec.backend)) if rec.backend else "unknown",
        "$ai_input_tokens": u.input_tokens,
        "$ai_output_tokens": u.output_tokens,
        "$ai_latency": rec.latency_s,
        "$ai_total_cost_usd": float(rec.cost_usd),
        "$ai_http_status": rec.status,
        "$ai_is_error": failed,
        "$ai_stream": rec.stream,
        "pointsman_request_id": rec.request_id,
        "pointsman_route": rec.route,
        "pointsman_task": rec.task,
        "pointsman_team": rec.team,
        "pointsman_key": rec.key,
        "pointsman_backend": rec.backend or None,
        "pointsman_requested_model": rec.requested_model,
        "pointsman_endpoint": rec.endpoint,
        "pointsman_outcome": rec.outcome,
    }
    if tc is not None and tc.parent_span_id and rec.shadow:
        props["$ai_parent_id"] = tc.parent_span_id
    elif rec.shadow:
        props["$ai_parent_id"] = rec.request_id.split(":", 1)[0]
    if rec.shadow:
        props["pointsman_shadow"] = True
    if u.cached_input_tokens:
        props["$ai_cache_read_input_tokens"] = u.cached_input_tokens
    if rec.stream and rec.ttft_s is not None:
        props["$ai_time_to_first_token"] = rec.ttft_s
    if failed:
        props["$ai_error"] = rec.error_type or rec.outcome
    if content is not None:
        props["$ai_input"] = content.input
        props["$ai_output_choices"] = content.output
    return _event("$ai_generation", rec, props)


def trace_event(rec: RequestRecord, distinct_id: str) -> dict[str, Any]:
    """The ``$ai_trace`` event grouping a client request with its shadow and comparator generations."""
    tc = rec.trace
    failed = rec.outcome != "ok"
    props: dict[str, Any] = {
        "distinct_id": distinct_id,
        "$ai_trace_id": tc.trace_id if tc is not None else rec.request_id,
        "$ai_span_name": rec.route,
        "$ai_latency": rec.latency_s,
        "$ai_is_error": failed,
        "pointsman_request_id": rec.request_id,
        "pointsman_route": rec.route,
        "pointsman_task": rec.task,
        "pointsman_team": rec.team,
    }
    if failed:
        props["$ai_error"] = rec.error_type or rec.outcome
    return _event("$ai_trace", rec, props)


def _event(name: str, rec: RequestRecord, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": name,
        "distinct_id": props["distinct_id"],
        "properties": props,
        "timestamp": _iso(rec.ts),
        "uuid": str(uuid.uuid4()),
    }


class PostHogExporter(HttpExporter):
    def __init__(
        self,
        cfg: PostHogConfig,
        backends: Callable[[], dict[str, BackendFacts]],
        dropped: Dropped,
        sent: Callable[[str, int], None],
        content: Content | None = None,
    ) -> None:
        assert cfg.endpoint and cfg.project_key
        headers = {"content-type": "application/json"}
        super().__init__("posthog", cfg, endpoint_url(cfg.endpoint, "/batch/"), headers, dropped, sent)
        self.cfg = cfg
        self.backends = backends
        self.content = content if cfg.content else None

    def _distinct(self, rec: RequestRecord) -> str:
        return (rec.team or rec.key) if self.cfg.distinct_id == "team" else rec.key

    def encode(self, batch: list[RequestRecord]) -> bytes:
        backends = self.backends()
        events: list[dict[str, Any]] = []
        for rec in batch:
            d = self._distinct(rec)
            events.append(generation_event(rec, backends, d, self.content(rec) if self.content else None))
            if not rec.shadow:
                events.append(trace_event(rec, d))
        return orjson.dumps({"api_key": self.cfg.project_key, "batch": events})
