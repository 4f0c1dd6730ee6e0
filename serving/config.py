"""Strict configuration models for backends and models (the ``backends:`` and ``models:`` sections)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wire.config_model import StrictModel

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"  # echoed in response headers (x-pointsman-model): no control characters


def check_http_url(value: str) -> str:
    if re.search(r"[\x00-\x20\x7f]", value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # out-of-range or non-numeric ports raise here
    except ValueError as exc:
        raise ValueError(f"must be a valid http(s) URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host, e.g. http://127.0.0.1:8000/v1")
    if port == 0:
        raise ValueError("port must be between 1 and 65535")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials in the URL; use api_key")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return value.rstrip("/")


class _HTTPBackendBase(StrictModel):
    api_key: str | None = Field(default=None, repr=False)
    """Credential sent upstream as ``Authorization: Bearer``. Never logged."""
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """Total time allowed for one upstream call (including a whole stream)."""
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    """Time allowed to open a connection."""
    max_connections: int = Field(default=256, ge=1, le=100_000)
    """Pooled connections kept to this backend (per endpoint)."""
    idle_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    """A pooled connection idle longer than this is closed instead of reused. Keep it below the upstream's own
    keep-alive timeout: a request sent on a connection at the moment the upstream closes it fails (a 502 when
    the route has nowhere else to try)."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """In-flight requests allowed at once; beyond it requests get 429 + Retry-After."""
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra headers sent on every upstream request (names are HTTP tokens; values have no control characters
    but tab, and are sent as UTF-8). Values may be credentials (Azure's ``api-key``): never logged, and shown
    as ``***``."""
    reject_metadata: bool = False
    """Strip the OpenAI ``metadata`` body field before forwarding (for upstreams that reject it)."""

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(
                    f"header name {name!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
                )
            if _CONTROL.search(value):
                raise ValueError(f"header {name!r}: the value has a control character")
        return v


class OpenAIBackendConfig(_HTTPBackendBase):
    """Any OpenAI-compatible HTTP API, passed through raw."""

    type: Literal["openai"]
    """Backend kind."""
    base_url: str = "https://api.openai.com/v1"
    """Base URL including ``/v1``."""
    third_party: bool = True
    """Request data sent here is processed by a third party (a provider's API): teams (or keys) without
    third-party processing consent are never routed here. Set ``false`` for an OpenAI-compatible endpoint you
    host yourself."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v)


class VLLMBackendConfig(_HTTPBackendBase):
    """A self-hosted vLLM OpenAI-compatible server, one or more endpoints."""

    type: Literal["vllm"]
    """Backend kind."""
    endpoints: list[str] = Field(min_length=1)
    """Base URLs of the vLLM servers, each including ``/v1``."""
    reject_metadata: bool = True
    """vLLM rejects unknown ``metadata``; stripped by default."""
    idle_timeout_s: float = Field(default=4.0, gt=0, le=3600)
    """A pooled connection idle longer than this is closed instead of reused: below vLLM's own keep-alive
    timeout (its server closes idle connections after 5 s, ``VLLM_HTTP_TIMEOUT_KEEP_ALIVE``), so that no request
    is sent on a connection vLLM is closing. Raise both together."""
    third_party: bool = False
    """Self-hosted: request data stays in-house. Set ``true`` when someone else runs these servers for you."""
    health_interval_s: float = Field(default=5.0, gt=0)
    """How often ``/health`` and ``/metrics`` are polled in the background."""
    gpu_hour_usd: str | None = None
    """Price of one GPU hour (decimal string), for measured self-hosted pricing."""
    gpu_count: int = Field(default=1, ge=1)
    """GPUs behind each endpoint."""
    throughput_window_s: float = Field(default=300.0, ge=1, le=86_400)
    """Trailing window over which the fleet's token throughput is measured (for ``gpu_hour_usd`` pricing)."""
    throughput_min_tokens: int = Field(default=1000, ge=1)
    """Tokens the window must hold before a measured price replaces the previous one (an idle fleet keeps its
    last price instead of jumping to a huge or undefined one)."""

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [check_http_url(u) for u in v]


class LiteLLMBackendConfig(StrictModel):
    """A provider reached through litellm's translation (Anthropic, Bedrock, Gemini, ...)."""

    type: Literal["litellm"]
    """Backend kind."""
    provider: str = Field(min_length=1)
    """litellm provider prefix, e.g. ``anthropic``."""
    third_party: bool = True
    """Request data sent here is processed by a third party (the provider): teams (or keys) without third-party
    processing consent are never routed here. Set ``false`` for a provider endpoint you host yourself."""
    api_key: str | None = Field(default=None, repr=False)
    """Provider credential. Never logged."""
    api_base: str | None = None
    """Override of the provider's base URL."""
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """Total time allowed for one upstream call."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """In-flight requests allowed at once; beyond it requests get 429 + Retry-After."""
    max_retries: int = Field(default=0, ge=0, le=10)
    """litellm's own retries (routing retries are configured on routes)."""

    @field_validator("api_base")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)


class LatencyConfig(StrictModel):
    """A log-normal latency distribution, given by its median and 95th percentile."""

    median_ms: float = Field(default=300.0, ge=0, le=600_000)
    """Median milliseconds."""
    p95_ms: float = Field(default=900.0, ge=0, le=600_000)
    """95th-percentile milliseconds (at least the median)."""

    @model_validator(mode="after")
    def _ordered(self) -> LatencyConfig:
        if self.p95_ms < self.median_ms:
            raise ValueError("p95_ms must be at least median_ms")
        return self


class SimulatedBackendConfig(StrictModel):
    """A model simulated in-process: deterministic answers, with the latency, speed, errors and quality of a
    real one (for the demo, load tests and trying a config without provider keys). Nothing leaves the host."""

    type: Literal["simulated"]
    """Backend kind."""
    third_party: bool = False
    """Treat it as a third-party provider for consent (nothing actually leaves the host): to try the consent
    rules with simulated models."""
    seed: int = 0
    """Seeds answers (with the request body), latencies and errors: the same seed replays the same run."""
    first_token: LatencyConfig = Field(default_factory=LatencyConfig)
    """Time to the first token (a complete answer also waits for the rest at ``tokens_per_s``)."""
    tokens_per_s: float = Field(default=80.0, gt=0, le=100_000)
    """Output tokens generated per second after the first."""
    error_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of calls that fail with ``error_status``."""
    error_status: int = Field(default=503, ge=400, le=599)
    """HTTP status of a simulated failure (5xx and 429 are retried by routing, other 4xx are not)."""
    quality: float = Field(default=1.0, ge=0, le=1)
    """Fraction of answers that are complete; the others drop about half of what a complete one says (which
    ``token_f1`` and a simulated judge notice)."""
    answer_words: int = Field(default=40, ge=1, le=4000)
    """Words in a complete answer (its output tokens, one per word)."""
    judge: bool = False
    """Answer judge prompts (``[Answer 1]`` / ``[Answer 2]``) with a verdict: the answer that covers more of
    the request's words wins."""
    self_hosted: bool = False
    """Account it as a self-hosted model (priced by GPU-hour) rather than a frontier API."""
    gpu_hour_usd: str | None = None
    """Price of one GPU hour (decimal string), for a self-hosted simulated model."""
    gpu_count: int = Field(default=1, ge=1)
    """GPUs behind it (with ``gpu_hour_usd``)."""
    embedding_dims: int = Field(default=64, ge=1, le=8192)
    """Length of the vectors ``/embeddings`` returns."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """In-flight requests allowed at once; beyond it requests get 429 + Retry-After."""
    served_models: list[str] = Field(default_factory=list)
    """Model ids it lists as its own (what a glob model entry such as ``sim-*`` shows in ``/v1/models``); it
    answers to any id."""


BackendConfig = Annotated[
    OpenAIBackendConfig | VLLMBackendConfig | LiteLLMBackendConfig | SimulatedBackendConfig,
    Field(discriminator="type"),
]


class ModelConfig(StrictModel):
    """A model name clients may send, mapped to a backend and the upstream's model id."""

    backend: str
    """Name of an entry in ``backends``."""
    upstream_model: str | None = Field(default=None, min_length=1, max_length=256, pattern=_PRINTABLE)
    """Model id sent upstream; defaults to the model's own name."""
    adapter: str | None = Field(default=None, min_length=1, max_length=256, pattern=_PRINTABLE)
    """LoRA adapter name on a vLLM backend; sent upstream as the model id."""
    owned_by: str = "pointsman"
    """Shown in ``/v1/models``."""
