"""Providers reached through litellm's OpenAI translation (Anthropic's Messages API and others).

litellm is imported lazily, when the first litellm backend is built, so a gateway without one never pays
its import time. This is the only module in the project that imports litellm.

An ``anthropic`` provider also takes Anthropic's Messages API natively (``speaks_messages``): Messages requests
are posted as the client wrote them to ``{api_base}/v1/messages`` over the same HTTP pass-through as
OpenAI backends (``x-api-key``, ``anthropic-version`` unless the client sent its own, the client's
``anthropic-beta``), so prompt caching, thinking, tool use, images and documents reach Anthropic untouched
rather than through litellm's OpenAI shape.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import orjson

from serving.backend import BackendInfo, UpstreamCall, UpstreamResponse, UpstreamStream
from serving.config import LiteLLMBackendConfig, OpenAIBackendConfig
from serving.errors import (
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from serving.http_backend import DEFAULT_MAX_RESPONSE_BYTES, OpenAIHTTPBackend
from wire.endpoints import ANTHROPIC, CHAT, EMBEDDINGS
from wire.errors import error_body

ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
"""Sent as ``anthropic-version`` when the client did not send its own."""


def messages_base_url(api_base: str | None) -> str:
    """The Messages API's base (up to ``/v1``) from a litellm ``api_base`` (``https://api.anthropic.com``, with
    or without ``/v1`` or ``/v1/messages``)."""
    base = (api_base or ANTHROPIC_URL).rstrip("/")
    base = base.removesuffix("/messages")
    return base if base.endswith("/v1") else f"{base}/v1"


_litellm: Any = None
_control: frozenset[str] = frozenset()

# Call options of litellm itself (not API fields) that a client body must never set: where the call goes, with
# which credentials and headers, and what litellm does with the data. litellm's own list is added at import.
_CONTROL_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "extra_headers",
        "extra_body",
        "extra_query",
        "headers",
        "callbacks",
        "success_callback",
        "failure_callback",
        "input_callback",
        "service_callback",
        "logger_fn",
        "mock_response",
        "custom_llm_provider",
        "num_retries",
        "max_retries",
        "timeout",
        "request_timeout",
        "client",
    }
)
_CONTROL_PREFIXES = (
    "litellm_",
    "aws_",
    "vertex_",
    "vertexai_",
    "azure_",
    "watsonx_",
    "langfuse_",
    "langsmith_",
)


def _lib() -> Any:
    global _litellm, _control
    if _litellm is None:
        # Use the price map shipped with the package; never fetch it over the network at import.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        _litellm = importlib.import_module("litellm")
        _litellm.suppress_debug_info = True
        _litellm.drop_params = True
        _litellm.telemetry = False
        own = importlib.import_module("litellm.types.utils").all_litellm_params
        _control = _CONTROL_FIELDS | frozenset(own)
    return _litellm


def is_control_field(name: str) -> bool:
    """A body member that litellm would take as one of its own call options (never a client's to set)."""
    return name in _control or name in _CONTROL_FIELDS or name.startswith(_CONTROL_PREFIXES)


def translate(exc: BaseException, backend: str) -> UpstreamError:
    """Map a litellm exception to the most specific ``UpstreamError``. Messages never carry credentials."""
    lib = _lib()
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, lib.Timeout | asyncio.TimeoutError):
        return UpstreamTimeout("provider timed out", backend=backend)
    if isinstance(exc, lib.APIConnectionError):
        return UpstreamConnectError("provider unreachable", backend=backend)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600:
        type_ = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
        }.get(status, "api_error")
        msg = getattr(exc, "message", None) or "provider returned an error"
        head = _lines(getattr(getattr(exc, "litellm_response_headers", None), "items", tuple)())
        said = {name: value.decode("latin-1") for name, value in head}
        return UpstreamHTTPError(
            status,
            error_body(str(msg)[:2000], type_),
            backend=backend,
            retry_after=said.get(b"retry-after"),
            retry_after_ms=said.get(b"retry-after-ms"),
            headers=head,
        )
    return UpstreamProtocolError("provider call failed", backend=backend)


_PROVIDER = "llm_provider-"


def _lines(pairs: Iterable[Any], prefix: str = "") -> tuple[tuple[bytes, bytes], ...]:
    """Header lines out of litellm's ``(name, value)`` strings: the names that start with ``prefix``, without it and
    lowercase; values that are not latin-1 text left out."""
    lines = []
    for name, value in pairs:
        if isinstance(name, str) and isinstance(value, str) and name.startswith(prefix):
            try:
                lines.append((name[len(prefix) :].lower().encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError:
                continue
    return tuple(lines)


def provider_headers(answer: Any) -> tuple[tuple[bytes, bytes], ...]:
    """The provider's answer header lines that litellm kept on ``answer`` (a response or a stream:
    ``_hidden_params["additional_headers"]``, each as ``llm_provider-<name>``), under their own names, for the
    gateway to relay the few it relays (``gateway.upstream_headers``). An error's are the exception's
    ``litellm_response_headers`` (its ``.response`` is a stand-in without them): ``translate``."""
    hidden = getattr(answer, "_hidden_params", None)
    kept = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    return _lines(kept.items(), _PROVIDER) if isinstance(kept, dict) else ()


def _empty_choice(c: Any) -> bool:
    return isinstance(c, dict) and not c.get("delta") and not c.get("finish_reason")


class LiteLLMStream:
    __slots__ = ("_it", "endpoint", "_backend", "_include_usage", "_closed", "headers")

    def __init__(self, it: Any, backend: LiteLLMBackend, include_usage: bool) -> None:
        self._it = it
        self.headers: Sequence[tuple[bytes, bytes]] = provider_headers(it)
        """The provider's header lines litellm kept (``provider_headers``)."""
        self._backend = backend
        self.endpoint = backend.info.endpoints[0]
        self._include_usage = include_usage
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._it:
                data = chunk.model_dump(exclude_none=True)
                if "usage" in data:
                    if not self._include_usage:
                        data.pop("usage")
                    elif all(_empty_choice(c) for c in data.get("choices", ())):
                        data["choices"] = []  # OpenAI's shape for the usage-only chunk
                yield b"data: " + orjson.dumps(data) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            raise translate(exc, self._backend.name) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._backend.in_flight -= 1
        close = getattr(self._it, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                pass


class LiteLLMBackend:
    def __init__(
        self, name: str, cfg: LiteLLMBackendConfig, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.info = BackendInfo(
            name=name,
            type="litellm",
            self_hosted=False,
            endpoints=[cfg.api_base or f"litellm:{cfg.provider}"],
        )
        self.accepts_metadata = False
        """litellm's own ``metadata`` argument is not the OpenAI field: it is never forwarded."""
        self.in_flight = 0
        self.native: OpenAIHTTPBackend | None = None
        """The Messages API pass-through (an ``anthropic`` provider)."""
        if cfg.provider == "anthropic":
            headers = {"x-api-key": cfg.api_key} if cfg.api_key else {}
            native_cfg = OpenAIBackendConfig(
                type="openai",
                base_url=messages_base_url(cfg.api_base),
                timeout_s=cfg.timeout_s,
                headers=headers,
            )
            self.native = OpenAIHTTPBackend(
                name, native_cfg, max_response_bytes, default_headers={"anthropic-version": ANTHROPIC_VERSION}
            )
        self.speaks_messages = self.native is not None
        _lib()

    def reachable(self) -> bool:
        return True

    async def start(self) -> None:
        if self.native is not None:
            await self.native.start()

    async def close(self) -> None:
        if self.native is not None:
            await self.native.close()

    async def list_models(self) -> list[str]:
        """The provider's models as litellm's bundled catalogue lists them (no network call)."""
        prefix = f"{self.cfg.provider}/"
        known = _lib().models_by_provider.get(self.cfg.provider) or ()
        return sorted({str(m).removeprefix(prefix) for m in known})

    def _kwargs(self, call: UpstreamCall) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(call.body)
        model = body.pop("model")
        kw: dict[str, Any] = {k: v for k, v in body.items() if not is_control_field(k)}
        kw["model"] = f"{self.cfg.provider}/{model}"
        kw["timeout"] = call.timeout_s
        kw["num_retries"] = self.cfg.max_retries
        headers = {}
        if call.request_id:
            headers["x-request-id"] = call.request_id
        if call.traceparent:
            headers["traceparent"] = call.traceparent
        if headers:
            kw["extra_headers"] = headers
        if self.cfg.api_key:
            kw["api_key"] = self.cfg.api_key
        if self.cfg.api_base:
            kw["api_base"] = self.cfg.api_base
        return kw

    def _check_capacity(self) -> None:
        cap = self.cfg.max_concurrency
        busy = self.in_flight + (self.native.in_flight if self.native is not None else 0)
        if cap is not None and busy >= cap:
            raise BackendOverloaded(f"backend {self.name} is at its concurrency limit", backend=self.name)

    def _enter(self) -> None:
        self._check_capacity()
        self.in_flight += 1

    def _unsupported(self, what: str) -> UpstreamHTTPError:
        return UpstreamHTTPError(
            400,
            error_body(
                f"{what} is not supported by a {self.cfg.provider} backend",
                "invalid_request_error",
                "unsupported_endpoint",
            ),
            backend=self.name,
        )

    def _messages(self, call: UpstreamCall) -> OpenAIHTTPBackend:
        """The pass-through for a Messages API call (counted by its own ``in_flight``)."""
        if self.native is None:
            raise self._unsupported(f"/{call.endpoint}")
        self._check_capacity()
        return self.native

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        if call.endpoint in ANTHROPIC:
            return await self._messages(call).call(call)
        lib = _lib()
        self._enter()
        try:
            if call.endpoint == CHAT:
                resp = await lib.acompletion(**self._kwargs(call))
            elif call.endpoint == EMBEDDINGS:
                resp = await lib.aembedding(**self._kwargs(call))
            else:
                raise self._unsupported(f"/{call.endpoint}")
            return UpstreamResponse(
                status=200,
                body=orjson.dumps(resp.model_dump(exclude_none=True)),
                endpoint=self.info.endpoints[0],
                headers=provider_headers(resp),
            )
        except Exception as exc:
            raise translate(exc, self.name) from exc
        finally:
            self.in_flight -= 1

    async def open_stream(
        self, call: UpstreamCall, avoid: frozenset[str] = frozenset()
    ) -> LiteLLMStream | UpstreamStream:
        if call.endpoint in ANTHROPIC:
            return await self._messages(call).open_stream(call)
        lib = _lib()
        if call.endpoint != CHAT:
            raise self._unsupported(f"streaming /{call.endpoint}")
        self._enter()
        try:
            kw = self._kwargs(call)
            include_usage = bool((kw.get("stream_options") or {}).get("include_usage"))
            it = await lib.acompletion(**kw)
            return LiteLLMStream(it, self, include_usage)
        except Exception as exc:
            self.in_flight -= 1
            raise translate(exc, self.name) from exc
