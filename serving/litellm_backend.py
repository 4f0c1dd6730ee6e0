"""Providers reached through litellm's OpenAI translation (Anthropic's Messages API and others).

litellm is imported lazily, when the first litellm backend is built, so a gateway without one never pays
its import time. This is the only module in the project that imports litellm.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson

from serving.backend import BackendInfo, UpstreamCall, UpstreamResponse
from serving.config import LiteLLMBackendConfig
from serving.errors import (
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from wire.endpoints import CHAT, EMBEDDINGS
from wire.errors import error_body

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
        return UpstreamHTTPError(status, error_body(str(msg)[:2000], type_), backend=backend)
    return UpstreamProtocolError("provider call failed", backend=backend)


def _empty_choice(c: Any) -> bool:
    return isinstance(c, dict) and not c.get("delta") and not c.get("finish_reason")


class LiteLLMStream:
    __slots__ = ("_it", "endpoint", "_backend", "_include_usage", "_closed")

    def __init__(self, it: Any, backend: LiteLLMBackend, include_usage: bool) -> None:
        self._it = it
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
    def __init__(self, name: str, cfg: LiteLLMBackendConfig) -> None:
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
        _lib()

    def reachable(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

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

    def _enter(self) -> None:
        cap = self.cfg.max_concurrency
        if cap is not None and self.in_flight >= cap:
            raise BackendOverloaded(f"backend {self.name} is at its concurrency limit", backend=self.name)
        self.in_flight += 1

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        lib = _lib()
        self._enter()
        try:
            if call.endpoint == CHAT:
                resp = await lib.acompletion(**self._kwargs(call))
            elif call.endpoint == EMBEDDINGS:
                resp = await lib.aembedding(**self._kwargs(call))
            else:
                raise UpstreamHTTPError(
                    400,
                    error_body(
                        f"/{call.endpoint} is not supported by a {self.cfg.provider} backend",
                        "invalid_request_error",
                        "unsupported_endpoint",
                    ),
                    backend=self.name,
                )
            return UpstreamResponse(
                status=200,
                body=orjson.dumps(resp.model_dump(exclude_none=True)),
                endpoint=self.info.endpoints[0],
            )
        except Exception as exc:
            raise translate(exc, self.name) from exc
        finally:
            self.in_flight -= 1

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> LiteLLMStream:
        lib = _lib()
        if call.endpoint != CHAT:
            raise UpstreamHTTPError(
                400,
                error_body(
                    f"streaming /{call.endpoint} is not supported by a {self.cfg.provider} backend",
                    "invalid_request_error",
                    "unsupported_endpoint",
                ),
                backend=self.name,
            )
        self._enter()
        try:
            kw = self._kwargs(call)
            include_usage = bool((kw.get("stream_options") or {}).get("include_usage"))
            it = await lib.acompletion(**kw)
            return LiteLLMStream(it, self, include_usage)
        except Exception as exc:
            self.in_flight -= 1
            raise translate(exc, self.name) from exc
