"""Fake telemetry destinations, real HTTP servers: an OTLP/HTTP collector that decodes every export with the
official OpenTelemetry protobuf definitions, and a PostHog capture endpoint (``/batch/``, ``/i/v0/e/``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.fakes.server import ThreadedServer


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@dataclass
class DecodedSpan:
    span: Span
    resource: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()


@dataclass
class FakeTelemetry:
    """``mode``: ``ok``; ``down`` (500 for everything); ``slow`` (answers after ``delay_s``)."""

    mode: str = "ok"
    delay_s: float = 30.0
    decode: bool = True
    """False: a sink that only counts what it receives (the benchmark's collector)."""
    span_bytes: int = 0
    spans: list[DecodedSpan] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    content_types: list[str] = field(default_factory=list)
    server: ThreadedServer | None = None

    def start(self) -> FakeTelemetry:
        self.server = ThreadedServer(self.app).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_post("/batch/", self.batch)
        app.router.add_post("/i/v0/e/", self.batch)
        return app

    async def _pre(self) -> web.Response | None:
        self.requests += 1
        if self.mode == "down":
            return web.Response(status=500, text="down")
        if self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        return None

    async def traces(self, request: web.Request) -> web.Response:
        refused = await self._pre()
        if refused is not None:
            return refused
        raw = await request.read()
        self.span_bytes += len(raw)
        if not self.decode:
            return web.Response(body=b"", content_type="application/x-protobuf")
        self.content_types.append(request.headers.get("content-type", ""))
        req = ExportTraceServiceRequest()
        req.ParseFromString(raw)
        for rs in req.resource_spans:
            resource = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {kv.key: any_value(kv.value) for kv in s.attributes}
                    self.spans.append(DecodedSpan(s, resource, attrs))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    async def batch(self, request: web.Request) -> web.Response:
        refused = await self._pre()
        if refused is not None:
            return refused
        doc = orjson.loads(await request.read())
        self.batches.append(doc)
        self.events.extend(doc.get("batch") or [doc])
        return web.json_response({"status": 1})

    def wait_for(self, what: str, n: int, timeout_s: float = 10.0) -> list[Any]:
        end = time.time() + timeout_s
        while time.time() < end:
            items: list[Any] = getattr(self, what)
            if len(items) >= n:
                return items
            time.sleep(0.02)
        raise AssertionError(f"expected {n} {what}, got {len(getattr(self, what))}")
