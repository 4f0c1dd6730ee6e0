"""Every exporter of finished requests, behind one ``offer``: request logs, OTLP traces, PostHog events.

The accountant offers each request once it is fully accounted (priced, estimated when needed); each exporter
keeps its own bounded queue, so a slow destination costs only its own drops
(``pointsman_export_dropped_total{exporter, reason}``), never a request's time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from accounting.catalog import BackendFacts
from accounting.export.config import ObservabilityConfig
from accounting.export.logs import RequestLog
from accounting.metrics import Metrics
from accounting.record import RequestRecord

if TYPE_CHECKING:  # imported when configured: protobuf and an HTTP client are not a start's cost otherwise
    from accounting.export.otel import Content, OtlpExporter, TraceSampler
    from accounting.export.posthog import PostHogExporter

log = logging.getLogger("pointsman.export")


class Exporters:
    def __init__(
        self,
        cfg: ObservabilityConfig,
        metrics: Metrics,
        backends: Callable[[], dict[str, BackendFacts]],
        content: Content | None = None,
    ) -> None:
        self.metrics = metrics
        self.logs = RequestLog(cfg.logs, self._dropped) if cfg.logs.enabled else None
        self.otlp: OtlpExporter | None = None
        self.posthog: PostHogExporter | None = None
        if cfg.traces.endpoint:
            from accounting.export.otel import OtlpExporter

            self.otlp = OtlpExporter(cfg.traces, backends, self._dropped, self._sent, content)
        if cfg.posthog.endpoint and cfg.posthog.project_key:
            from accounting.export.posthog import PostHogExporter

            self.posthog = PostHogExporter(cfg.posthog, backends, self._dropped, self._sent, content)
        if cfg.posthog.endpoint and not cfg.posthog.project_key:
            log.warning("observability.posthog.endpoint is set without a project_key: no events are sent")

    @property
    def sampler(self) -> TraceSampler | None:
        """Decides per request whether it is traced; None when tracing is off."""
        return self.otlp.sampler if self.otlp is not None else None

    def offer(self, rec: RequestRecord) -> None:
        """A fully accounted request: queue it for every exporter (never blocks, never raises)."""
        try:
            if self.logs is not None:
                self.logs.offer(rec)
            if self.otlp is not None:
                self.otlp.offer(rec)
            if self.posthog is not None:
                self.posthog.offer(rec)
        except Exception:
            log.exception("export of request %s failed", rec.request_id)

    def _dropped(self, exporter: str, reason: str, n: int) -> None:
        self.metrics.export_dropped.labels(exporter, reason).inc(n)

    def _sent(self, exporter: str, n: int) -> None:
        self.metrics.export_sent.labels(exporter).inc(n)

    async def start(self) -> None:
        for e in (self.logs, self.otlp, self.posthog):
            if e is not None:
                await (e.batcher.start() if isinstance(e, RequestLog) else e.start())

    async def close(self) -> None:
        if self.logs is not None:
            await self.logs.batcher.close()
        for e in (self.otlp, self.posthog):
            if e is not None:
                await e.close()

    async def flushed(self, wait_s: float = 10.0) -> None:
        for e in (self.logs, self.otlp, self.posthog):
            if e is not None:
                await e.batcher.flushed(wait_s)
