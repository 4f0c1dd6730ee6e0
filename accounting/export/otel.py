"""OpenTelemetry traces: the sampling decision on the request path, spans built and exported off it.

Each finished, sampled request becomes one span (kind SERVER; the client's ``traceparent`` span as parent),
with a child span (kind CLIENT) per upstream attempt. Shadow and comparator calls are their own records with a
context derived from the request's, so they export as child spans of the request span. Attributes follow the
OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
``error.type``) plus pointsman's own (``pointsman.route``, ``.task``, ``.team``, ``.cost_usd``, ...).

Spans travel as an OTLP ``ExportTraceServiceRequest`` (``opentelemetry-proto``) over HTTP/protobuf
(``POST <endpoint>/v1/traces``), batched by ``Batcher``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from accounting.capture.content import ExchangeContent, Message
from accounting.catalog import BackendFacts
from accounting.export.batcher import Dropped
from accounting.export.config import TracesConfig
from accounting.export.http_exporter import HttpExporter, endpoint_url
from accounting.record import RequestRecord
from wire.traceparent import TraceContext, new_span_id, new_trace_id, parse_traceparent

OPERATIONS = {
    "chat/completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}
"""``gen_ai.operation.name`` by endpoint (the Responses API is a chat operation in the conventions)."""

_SCOPE = InstrumentationScope(name="pointsman")
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


def _kv(key: str, value: str | bool | int | float) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


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
    rec: RequestRecord, backends: dict[str, BackendFacts], content: ExchangeContent | None = None
) -> list[Span]:
    """The spans of one finished, traced request: its own and one per upstream call it made."""
    tc = rec.trace
    assert tc is not None
    op = OPERATIONS.get(rec.endpoint, rec.endpoint)
    start = tc.start_ns
    end = start + int(rec.latency_s * 1e9)
    u = rec.usage
    attrs = [
        _kv("gen_ai.operation.name", op),
        _kv("gen_ai.request.model", rec.requested_model),
        _kv("pointsman.request_id", rec.request_id),
        _kv("pointsman.route", rec.route),
        _kv("pointsman.key", rec.key),
        _kv("pointsman.endpoint", rec.endpoint),
        _kv("pointsman.stream", rec.stream),
        _kv("pointsman.outcome", rec.outcome),
        _kv("pointsman.cost_usd", float(rec.cost_usd)),
        _kv("http.response.status_code", rec.status),
    ]
    if rec.backend:
        attrs.append(_kv("gen_ai.provider.name", provider_name(backends.get(rec.backend))))
        attrs.append(_kv("pointsman.backend", rec.backend))
    if rec.upstream_model:
        attrs.append(_kv("gen_ai.response.model", rec.upstream_model))
    if rec.has_usage or u.estimated:
        attrs.append(_kv("gen_ai.usage.input_tokens", u.input_tokens))
        attrs.append(_kv("gen_ai.usage.output_tokens", u.output_tokens))
        if u.cached_input_tokens:
            attrs.append(_kv("gen_ai.usage.cache_read.input_tokens", u.cached_input_tokens))
        if u.estimated:
            attrs.append(_kv("pointsman.usage_estimated", True))
    if rec.task:
        attrs.append(_kv("pointsman.task", rec.task))
    if rec.team:
        attrs.append(_kv("pointsman.team", rec.team))
    if rec.stream and rec.ttft_s is not None:
        attrs.append(_kv("pointsman.time_to_first_token_s", rec.ttft_s))
    if rec.fallbacks:
        attrs.append(_kv("pointsman.fallbacks", rec.fallbacks))
    if rec.shadow:
        attrs.append(_kv("pointsman.shadow", True))
        attrs.append(_kv("pointsman.call", "comparator" if ":judge:" in rec.request_id else "shadow"))
    if rec.error_type:
        attrs.append(_kv("error.type", rec.error_type))
    if content is not None:
        import orjson  # content is rare (opt-in and approved teams only)

        attrs.append(_kv("gen_ai.input.messages", orjson.dumps(genai_messages(content.input)).decode()))
        attrs.append(
            _kv("gen_ai.output.messages", orjson.dumps(genai_messages(content.output, True)).decode())
        )
    failed = rec.outcome != "ok"
    spans = [
        Span(
            trace_id=bytes.fromhex(tc.trace_id),
            span_id=bytes.fromhex(tc.span_id),
            parent_span_id=bytes.fromhex(tc.parent_span_id) if tc.parent_span_id else b"",
            name=f"{'shadow ' if rec.shadow else ''}{op} {rec.requested_model}",
            kind=Span.SPAN_KIND_CLIENT if rec.shadow else Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=attrs,
            status=Status(code=Status.STATUS_CODE_ERROR, message=rec.error_type or rec.outcome)
            if failed
            else Status(),
        )
    ]
    for c in tc.children:
        cattrs = [
            _kv("gen_ai.operation.name", op),
            _kv("gen_ai.provider.name", provider_name(backends.get(c.backend))),
            _kv("gen_ai.request.model", c.model),
            _kv("pointsman.backend", c.backend),
            _kv("pointsman.call", c.kind),
        ]
        if c.status:
            cattrs.append(_kv("http.response.status_code", c.status))
        if c.error:
            cattrs.append(_kv("error.type", c.error))
        spans.append(
            Span(
                trace_id=bytes.fromhex(tc.trace_id),
                span_id=bytes.fromhex(c.span_id),
                parent_span_id=bytes.fromhex(tc.span_id),
                name=f"{op} {c.model}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=c.start_ns,
                end_time_unix_nano=c.end_ns or end,
                attributes=cattrs,
                status=Status(code=Status.STATUS_CODE_ERROR, message=c.error) if c.error else Status(),
            )
        )
    return spans


def export_request(spans: Sequence[Span], service_name: str) -> ExportTraceServiceRequest:
    resource = Resource(
        attributes=[_kv("service.name", service_name), _kv("telemetry.sdk.name", "pointsman")]
    )
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=_SCOPE, spans=spans)])]
    )


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

    def offer(self, rec: RequestRecord) -> None:
        if rec.trace is not None and rec.trace.sampled:
            self.batcher.offer(rec)

    def encode(self, batch: list[RequestRecord]) -> bytes:
        backends = self.backends()
        spans: list[Span] = []
        for rec in batch:
            spans.extend(record_spans(rec, backends, self.content(rec) if self.content else None))
        data: bytes = export_request(spans, self.cfg.service_name).SerializeToString()
        return data
