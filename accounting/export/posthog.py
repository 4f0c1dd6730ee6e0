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

import aiohttp
import orjson

from accounting.catalog import BackendFacts
from accounting.export.batcher import Batcher, Dropped
from accounting.export.config import PostHogConfig
from accounting.export.otel import Content, provider_name
from accounting.record import RequestRecord


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1_000_000):06d}Z"


def generation_event(
    rec: RequestRecord,
    backends: dict[str, BackendFacts],
    distinct_id: str,
    content: tuple[Any, Any] | None = None,
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
        props["$ai_input"], props["$ai_output_choices"] = content
    return {
        "event": "$ai_generation",
        "distinct_id": distinct_id,
        "properties": props,
        "timestamp": _iso(rec.ts),
        "uuid": str(uuid.uuid4()),
    }


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
    return {
        "event": "$ai_trace",
        "distinct_id": distinct_id,
        "properties": props,
        "timestamp": _iso(rec.ts),
        "uuid": str(uuid.uuid4()),
    }


def batch_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    rest = base.split("://", 1)[-1]
    return base if "/" in rest else base + "/batch/"


class PostHogExporter:
    def __init__(
        self,
        cfg: PostHogConfig,
        backends: Callable[[], dict[str, BackendFacts]],
        dropped: Dropped,
        sent: Callable[[str, int], None],
        content: Content | None = None,
    ) -> None:
        assert cfg.endpoint and cfg.project_key
        self.cfg = cfg
        self.url = batch_url(cfg.endpoint)
        self.backends = backends
        self.content = content if cfg.content else None
        self.batcher: Batcher[RequestRecord] = Batcher("posthog", cfg, self._send, dropped, sent)
        self.session: aiohttp.ClientSession | None = None

    def offer(self, rec: RequestRecord) -> None:
        self.batcher.offer(rec)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        if self.session is not None:
            await self.session.close()

    def _distinct(self, rec: RequestRecord) -> str:
        return (rec.team or rec.key) if self.cfg.distinct_id == "team" else rec.key

    async def _send(self, batch: list[RequestRecord]) -> None:
        assert self.session is not None
        backends = self.backends()
        events: list[dict[str, Any]] = []
        for rec in batch:
            d = self._distinct(rec)
            events.append(generation_event(rec, backends, d, self.content(rec) if self.content else None))
            if not rec.shadow:
                events.append(trace_event(rec, d))
        body = orjson.dumps({"api_key": self.cfg.project_key, "batch": events})
        async with self.session.post(
            self.url, data=body, headers={"content-type": "application/json"}
        ) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"PostHog capture answered {resp.status}")
            await resp.read()
