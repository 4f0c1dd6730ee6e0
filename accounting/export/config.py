"""Strict configuration of what pointsman exports about each request: logs, OpenTelemetry traces, PostHog events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wire.config_model import StrictModel


class QueueConfig(StrictModel):
    queue_size: int = Field(default=10_000, ge=1, le=10_000_000)
    """Finished requests waiting to be exported; beyond it they are dropped and counted
    (``pointsman_export_dropped_total{reason="queue_full"}``), never waited for."""
    batch_size: int = Field(default=512, ge=1, le=100_000)
    """Most items per export call."""
    flush_interval_s: float = Field(default=1.0, gt=0, le=3600)
    """Longest an item waits for its batch."""
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    """Per export call; a batch that fails or times out is dropped and counted (``reason="export_failed"``)."""


class RequestLogConfig(QueueConfig):
    """One structured line per finished request (never content or secrets)."""

    enabled: bool = True
    """Off: no request lines at all (the ledger and metrics still count every request)."""
    format: Literal["json", "text"] = "json"
    """``json``: one JSON object per line; ``text``: ``key=value`` pairs, values with spaces quoted."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level written: successes are ``info``, failures and requests that fell back ``warning``."""
    success_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of successful requests logged (failures and fallbacks always are)."""
    flush_interval_s: float = Field(default=0.2, gt=0, le=3600)
    """Longest a line waits for its batch."""


class TracesConfig(QueueConfig):
    """OpenTelemetry spans over OTLP/HTTP (protobuf): one per request, children per upstream call."""

    endpoint: str | None = None
    """The collector, e.g. ``http://otel-collector:4318`` (``/v1/traces`` is appended unless a path is given).
    Unset: no tracing (and no ``traceparent`` is sent upstream)."""
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Sent with every export (e.g. an ingest token)."""
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces sampled (by trace id); a client's ``traceparent`` decides for its own traces."""
    service_name: str = Field(default="pointsman", min_length=1, max_length=256)
    """The spans' ``service.name`` resource attribute."""
    content: bool = False
    """Prompt and completion text on spans (``gen_ai.input.messages``, ``gen_ai.output.messages``), redacted,
    and only for teams approved for data capture."""


class PostHogConfig(QueueConfig):
    """LLM-analytics events (``$ai_generation``, ``$ai_trace``) to a PostHog-compatible capture endpoint."""

    endpoint: str | None = None
    """e.g. ``https://us.i.posthog.com`` (events go to ``/batch/``). Unset: no events."""
    project_key: str | None = Field(default=None, repr=False)
    """The project API key (``phc_...``)."""
    distinct_id: Literal["key", "team"] = "key"
    """Whose events these are in PostHog: the client key's name or its team."""
    content: bool = False
    """``$ai_input`` / ``$ai_output_choices``, redacted, and only for teams approved for data capture."""


class ObservabilityConfig(StrictModel):
    logs: RequestLogConfig = Field(default_factory=RequestLogConfig)
    """Request log lines."""
    traces: TracesConfig = Field(default_factory=TracesConfig)
    """OpenTelemetry traces."""
    posthog: PostHogConfig = Field(default_factory=PostHogConfig)
    """PostHog LLM analytics."""
