"""OpenTelemetry traces: the sampling decision on the request path, spans built and exported off it.

Each finished, sampled request becomes one span (kind SERVER; the client's ``traceparent`` span as parent),
with a child span (kind CLIENT) per upstream attempt. Shadow and comparator calls are their own records with a
context derived from the request's, so they export as child spans of the request span. Attributes follow the
OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
``error.type``) plus pointsman's own (``pointsman.route``, ``.task``, ``.team``, ``.cost_usd``, ...).

Spans travel as an OTLP ``ExportTraceServiceRequest`` over HTTP/protobuf (``POST <endpoint>/v1/traces``),
batched by ``Batcher``; each batch is written as protobuf bytes by ``otlp_proto`` (what ``opentelemetry-proto``
would serialise, for a fraction of its CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accounting.capture.content import ExchangeContent, Message
from accounting.catalog import BackendFacts
from accounting.export.batcher import Dropped
from accounting.export.config import TracesConfig
from accounting.export.http_exporter import HttpExporter, endpoint_url
from accounting.export.otlp_proto import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_SERVER,
    Encoder,
    export_request,
    key_value,
    span,
)
from accounting.record import RequestRecord
from wire.traceparent import TraceContext, new_span_id, new_trace_id, parse_traceparent

OPERATIONS = {
    "chat/completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}
"""``gen_ai.operation.name`` by endpoint (the Responses API is a chat operation in the conventions)."""

_MAX = 1 << 64

Content = Callable[[RequestRecord], ExchangeContent | None]
"""``rec -> its redacted conversation and answer`` when content may be exported for it, else None."""


def provider_name(facts: BackendFacts | None) -> str:
    """``gen_ai.provider.name`` of a backend: the litellm provider, ``openai``, or ``vllm`` for self-hosted."""
    if facts is None:
        return "unknown"
    if facts.type == "litellm" and facts.provider:
        return facts.provider
    return facts.type


class TraceSampler:
    """Decides, per request, whether it is traced: a client's sampled flag wins (parent-based); new traces are
    sampled by trace id at ``sample_rate``. Requests are always given a context (so ``traceparent`` goes
    upstream) when tracing is configured."""

    def __init__(self, sample_rate: float) -> None:
        self.threshold = int(sample_rate * _MAX)

    def start(self, traceparent: bytes | None) -> TraceContext:
        parent = parse_traceparent(traceparent)
        if parent is not None:
            trace_id, parent_id, sampled = parent
            return TraceContext(trace_id, new_span_id(), parent_id, sampled)
        trace_id = new_trace_id()
        return TraceContext(trace_id, new_span_id(), None, int(trace_id[16:], 16) < self.threshold)


def genai_messages(messages: list[Message], output: bool = False) -> list[dict[str, Any]]:
    """Chat messages in the GenAI conventions' message schema (``gen_ai.input.messages`` /
    ``gen_ai.output.messages``): ``{"role", "parts": [...]}`` with text, tool-call and tool-call-response parts;
    other parts (images, files) by their type only; output messages carry ``finish_reason``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.get("role") == "tool":
            parts.append(
                {"type": "tool_call_response", "id": m.get("tool_call_id"), "response": m.get("content")}
            )
        else:
            c = m.get("content")
            for p in [c] if isinstance(c, str) else c if isinstance(c, list) else ():
                if isinstance(p, str):
                    parts.append({"type": "text", "content": p})
                elif isinstance(p, dict) and isinstance(p.get("text"), str):
                    parts.append({"type": "text", "content": p["text"]})
                elif isinstance(p, dict):
                    parts.append({"type": str(p.get("type", "unknown"))})
            calls = m.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts.append(
                        {
                            "type": "tool_call",
                            "id": call.get("id"),
                            "name": fn.get("name"),
                            "arguments": fn.get("arguments"),
                        }
                    )
        msg: dict[str, Any] = {"role": m.get("role"), "parts": parts}
        if output:
            msg["finish_reason"] = m.get("finish_reason") or "unknown"
        out.append(msg)
    return out


def record_spans(
    enc: Encoder,
    rec: RequestRecord,
    backends: dict[str, BackendFacts],
    content: ExchangeContent | None = None,
) -> list[bytes]:
    """The spans of one finished, traced request, encoded (``otlp_proto.span``): its own and one per upstream
    call it made."""
    tc = rec.trace
    assert tc is not None
    cached = enc.cached
    op = OPERATIONS.get(rec.endpoint, rec.endpoint)
    start = tc.start_ns
    end = start + int(rec.latency_s * 1e9)
    u = rec.usage
    attrs = [
        cached("gen_ai.operation.name", op),
        cached("gen_ai.request.model", rec.requested_model),
        enc.attr("pointsman.request_id", rec.request_id),
        cached("pointsman.route", rec.route),
        cached("pointsman.key", rec.key),
        cached("pointsman.endpoint", rec.endpoint),
        cached("pointsman.stream", rec.stream),
        cached("pointsman.outcome", rec.outcome),
        enc.attr("pointsman.cost_usd", float(rec.cost_usd)),
        cached("http.response.status_code", rec.status),
    ]
    if rec.backend:
        attrs.append(cached("gen_ai.provider.name", provider_name(backends.get(rec.backend))))
        attrs.append(cached("pointsman.backend", rec.backend))
    if rec.upstream_model:
        attrs.append(cached("gen_ai.response.model", rec.upstream_model))
    if rec.has_usage or u.estimated:
        attrs.append(enc.attr("gen_ai.usage.input_tokens", u.input_tokens))
        attrs.append(enc.attr("gen_ai.usage.output_tokens", u.output_tokens))
        if u.cached_input_tokens:
            attrs.append(enc.attr("gen_ai.usage.cache_read.input_tokens", u.cached_input_tokens))
        if u.estimated:
            attrs.append(cached("pointsman.usage_estimated", True))
    if rec.task:
        attrs.append(cached("pointsman.task", rec.task))
    if rec.team:
        attrs.append(cached("pointsman.team", rec.team))
    if rec.stream and rec.ttft_s is not None:
        attrs.append(enc.attr("pointsman.time_to_first_token_s", rec.ttft_s))
    if rec.fallbacks:
        attrs.append(cached("pointsman.fallbacks", rec.fallbacks))
    if rec.shadow:
        attrs.append(cached("pointsman.shadow", True))
        attrs.append(cached("pointsman.call", "comparator" if ":judge:" in rec.request_id else "shadow"))
    if rec.error_type:
        attrs.append(cached("error.type", rec.error_type))
    if content is not None:
        import orjson  # content is rare (opt-in and approved teams only)

        attrs.append(enc.attr("gen_ai.input.messages", orjson.dumps(genai_messages(content.input)).decode()))
        attrs.append(
            enc.attr("gen_ai.output.messages", orjson.dumps(genai_messages(content.output, True)).decode())
        )
    trace_id = bytes.fromhex(tc.trace_id)
    span_id = bytes.fromhex(tc.span_id)
    spans = [
        span(
            trace_id,
            span_id,
            bytes.fromhex(tc.parent_span_id) if tc.parent_span_id else b"",
            enc.name(f"shadow {op} {rec.requested_model}" if rec.shadow else f"{op} {rec.requested_model}"),
            SPAN_KIND_CLIENT if rec.shadow else SPAN_KIND_SERVER,
            start,
            end,
            attrs,
            (rec.error_type or rec.outcome) if rec.outcome != "ok" else None,
        )
    ]
    for c in tc.children:
        cattrs = [
            cached("gen_ai.operation.name", op),
            cached("gen_ai.provider.name", provider_name(backends.get(c.backend))),
            cached("gen_ai.request.model", c.model),
            cached("pointsman.backend", c.backend),
            cached("pointsman.call", c.kind),
        ]
        if c.status:
            cattrs.append(cached("http.response.status_code", c.status))
        if c.error:
            cattrs.append(cached("error.type", c.error))
        spans.append(
            span(
                trace_id,
                bytes.fromhex(c.span_id),
                span_id,
                enc.name(f"{op} {c.model}"),
                SPAN_KIND_CLIENT,
                c.start_ns,
                c.end_ns or end,
                cattrs,
                c.error or None,
            )
        )
    return spans


class OtlpExporter(HttpExporter):
    def __init__(
        self,
        cfg: TracesConfig,
        backends: Callable[[], dict[str, BackendFacts]],
        dropped: Dropped,
        sent: Callable[[str, int], None],
        content: Content | None = None,
    ) -> None:
        assert cfg.endpoint
        headers = {"content-type": "application/x-protobuf", **cfg.headers}
        super().__init__("otlp", cfg, endpoint_url(cfg.endpoint, "/v1/traces"), headers, dropped, sent)
        self.cfg = cfg
        self.sampler = TraceSampler(cfg.sample_rate)
        self.backends = backends
        self.content = content if cfg.content else None
        self.encoder = Encoder()
        self.resource = [
            key_value("service.name", cfg.service_name),
            key_value("telemetry.sdk.name", "pointsman"),
        ]

    def offer(self, rec: RequestRecord) -> None:
        if rec.trace is not None and rec.trace.sampled:
            self.batcher.offer(rec)

    def encode(self, batch: list[RequestRecord]) -> bytes:
        backends = self.backends()
        spans: list[bytes] = []
        for rec in batch:
            spans += record_spans(self.encoder, rec, backends, self.content(rec) if self.content else None)
        return export_request(spans, self.resource, "pointsman")
