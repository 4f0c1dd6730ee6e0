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

import asyncio
import random
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
    Attr,
    attr,
    export_request,
    head,
    key_value,
    span,
    status,
)
from accounting.record import RequestRecord
from wire.traceparent import ChildSpan, TraceContext, new_span_id, parse_traceparent

OPERATIONS = {
    "chat/completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}
"""``gen_ai.operation.name`` by endpoint (the Responses API is a chat operation in the conventions)."""

_MAX = 1 << 64
_LOW64 = _MAX - 1

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
        bits = random.getrandbits(128) or 1  # (what ``new_trace_id`` writes; its low 64 bits decide)
        return TraceContext(f"{bits:032x}", new_span_id(), None, (bits & _LOW64) < self.threshold)


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


_CACHE_MAX = 4096
_CHUNK = 64
_REQUEST_ID = Attr("pointsman.request_id")
_COST = Attr("pointsman.cost_usd")
_INPUT_TOKENS = Attr("gen_ai.usage.input_tokens")
_OUTPUT_TOKENS = Attr("gen_ai.usage.output_tokens")
_CACHE_READ_TOKENS = Attr("gen_ai.usage.cache_read.input_tokens")
_TTFT = Attr("pointsman.time_to_first_token_s")


def _join(attrs: list[tuple[str, str | bool | int]]) -> bytes:
    return b"".join(attr(k, v) for k, v in attrs)


class SpanEncoder:
    """Encodes the spans of finished, traced requests (``otlp_proto``). Most of a span repeats from request to
    request (its name, kind, status and most attributes follow the model, route, key, backend and outcome):
    those parts are encoded once per distinct combination (each cache cleared past ``_CACHE_MAX`` entries) and
    only ids, times, the request id, the cost, token counts and times to first token are encoded per request.
    Not thread-safe: one per exporter, used by its batch task."""

    def __init__(self) -> None:
        self._requests: dict[tuple[Any, ...], tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]] = {}
        self._calls: dict[tuple[str, str, str, str, str, int, str | None], tuple[bytes, bytes]] = {}
        self._providers: dict[str, str] = {}
        """``gen_ai.provider.name`` per backend name, for the backends of the facts last given (``spans``)."""
        self._facts: dict[str, BackendFacts] | None = None

    def _request_parts(
        self, rec: RequestRecord, op: str, provider: str | None
    ) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]:
        """(head, then the fixed attributes around each per-request one, then the status) of a request span."""
        u = rec.usage
        usage = rec.has_usage or u.estimated
        call = ("comparator" if ":judge:" in rec.request_id else "shadow") if rec.shadow else ""
        shape = (
            op,
            rec.requested_model,
            rec.route,
            rec.key,
            rec.endpoint,
            rec.stream,
            rec.outcome,
            rec.status,
            provider,
            rec.backend,
            rec.upstream_model,
            usage and u.estimated,
            rec.task,
            rec.team,
            rec.fallbacks,
            call,
            rec.error_type,
        )
        parts = self._requests.get(shape)
        if parts is not None:
            return parts
        after_cost: list[tuple[str, str | bool | int]] = [("http.response.status_code", rec.status)]
        if rec.backend:
            after_cost += [("gen_ai.provider.name", provider or ""), ("pointsman.backend", rec.backend)]
        if rec.upstream_model:
            after_cost.append(("gen_ai.response.model", rec.upstream_model))
        after_usage: list[tuple[str, str | bool | int]] = []
        if usage and u.estimated:
            after_usage.append(("pointsman.usage_estimated", True))
        if rec.task:
            after_usage.append(("pointsman.task", rec.task))
        if rec.team:
            after_usage.append(("pointsman.team", rec.team))
        after_ttft: list[tuple[str, str | bool | int]] = []
        if rec.fallbacks:
            after_ttft.append(("pointsman.fallbacks", rec.fallbacks))
        if call:
            after_ttft += [("pointsman.shadow", True), ("pointsman.call", call)]
        if rec.error_type:
            after_ttft.append(("error.type", rec.error_type))
        parts = (
            head(
                f"shadow {op} {rec.requested_model}" if rec.shadow else f"{op} {rec.requested_model}",
                SPAN_KIND_CLIENT if rec.shadow else SPAN_KIND_SERVER,
            ),
            _join([("gen_ai.operation.name", op), ("gen_ai.request.model", rec.requested_model)]),
            _join(
                [
                    ("pointsman.route", rec.route),
                    ("pointsman.key", rec.key),
                    ("pointsman.endpoint", rec.endpoint),
                    ("pointsman.stream", rec.stream),
                    ("pointsman.outcome", rec.outcome),
                ]
            ),
            _join(after_cost),
            _join(after_usage),
            _join(after_ttft),
            status((rec.error_type or rec.outcome) if rec.outcome != "ok" else None),
        )
        if len(self._requests) >= _CACHE_MAX:
            self._requests.clear()
        self._requests[shape] = parts
        return parts

    def _call_parts(self, op: str, provider: str, c: ChildSpan) -> tuple[bytes, bytes]:
        """(head, attributes and status) of an upstream call's span."""
        shape = (op, provider, c.model, c.backend, c.kind, c.status, c.error)
        parts = self._calls.get(shape)
        if parts is None:
            attrs: list[tuple[str, str | bool | int]] = [
                ("gen_ai.operation.name", op),
                ("gen_ai.provider.name", provider),
                ("gen_ai.request.model", c.model),
                ("pointsman.backend", c.backend),
                ("pointsman.call", c.kind),
            ]
            if c.status:
                attrs.append(("http.response.status_code", c.status))
            if c.error:
                attrs.append(("error.type", c.error))
            parts = (head(f"{op} {c.model}", SPAN_KIND_CLIENT), _join(attrs) + status(c.error or None))
            if len(self._calls) >= _CACHE_MAX:
                self._calls.clear()
            self._calls[shape] = parts
        return parts

    def spans(
        self, rec: RequestRecord, backends: dict[str, BackendFacts], content: ExchangeContent | None = None
    ) -> list[bytes]:
        """The spans of one finished, traced request, encoded (``otlp_proto.span``): its own and one per upstream
        call it made."""
        tc = rec.trace
        assert tc is not None
        if backends is not self._facts:  # (the same dict until the config changes)
            self._facts, self._providers = backends, {}
        providers = self._providers
        op = OPERATIONS.get(rec.endpoint, rec.endpoint)
        start = tc.start_ns
        end = start + int(rec.latency_s * 1e9)
        u = rec.usage
        provider = None
        if rec.backend:
            provider = providers.get(rec.backend)
            if provider is None:
                provider = providers[rec.backend] = provider_name(backends.get(rec.backend))
        name_kind, fixed0, fixed1, fixed2, fixed3, fixed4, st = self._request_parts(rec, op, provider)
        rest = [
            fixed0,
            _REQUEST_ID.string(rec.request_id),
            fixed1,
            _COST.double(float(rec.cost_usd)),
            fixed2,
        ]
        if rec.has_usage or u.estimated:
            rest.append(_INPUT_TOKENS.integer(u.input_tokens))
            rest.append(_OUTPUT_TOKENS.integer(u.output_tokens))
            if u.cached_input_tokens:
                rest.append(_CACHE_READ_TOKENS.integer(u.cached_input_tokens))
        rest.append(fixed3)
        if rec.stream and rec.ttft_s is not None:
            rest.append(_TTFT.double(rec.ttft_s))
        rest.append(fixed4)
        if content is not None:
            import orjson  # content is rare (opt-in and approved teams only)

            rest.append(attr("gen_ai.input.messages", orjson.dumps(genai_messages(content.input)).decode()))
            rest.append(
                attr("gen_ai.output.messages", orjson.dumps(genai_messages(content.output, True)).decode())
            )
        rest.append(st)
        trace_id = bytes.fromhex(tc.trace_id)
        span_id = bytes.fromhex(tc.span_id)
        parent = bytes.fromhex(tc.parent_span_id) if tc.parent_span_id else b""
        spans = [span(trace_id, span_id, parent, name_kind, start, end, rest)]
        for c in tc.children:
            p = providers.get(c.backend)
            if p is None:
                p = providers[c.backend] = provider_name(backends.get(c.backend))
            call_head, call_rest = self._call_parts(op, p, c)
            spans.append(
                span(
                    trace_id,
                    bytes.fromhex(c.span_id),
                    span_id,
                    call_head,
                    c.start_ns,
                    c.end_ns or end,
                    [call_rest],
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
        self.encoder = SpanEncoder()
        self.resource = [
            key_value("service.name", cfg.service_name),
            key_value("telemetry.sdk.name", "pointsman"),
        ]

    def offer(self, rec: RequestRecord) -> None:
        if rec.trace is not None and rec.trace.sampled:
            self.batcher.offer(rec)

    async def payload(self, batch: list[RequestRecord]) -> bytes:
        """The batch's ``ExportTraceServiceRequest``, encoded ``_CHUNK`` requests per loop turn: a full batch is a
        few milliseconds of encoding, which requests should not wait behind."""
        backends = self.backends()
        spans: list[bytes] = []
        for i, rec in enumerate(batch, 1):
            spans += self.encoder.spans(rec, backends, self.content(rec) if self.content else None)
            if i % _CHUNK == 0:
                await asyncio.sleep(0)
        return export_request(spans, self.resource, "pointsman")
