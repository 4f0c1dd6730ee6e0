"""The small protocol every model backend implements.

A backend takes an OpenAI-shaped request body (JSON text ready to send: the model already rewritten to the upstream
id; see ``routing.upstream_call``) for one endpoint and returns either a complete response or a byte stream of
OpenAI SSE events. Backends raise only ``serving.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class UpstreamCall:
    """One call to a backend."""

    endpoint: str
    body: bytes
    """The JSON request body, as it is sent (a backend that needs the document parses it)."""
    stream: bool
    timeout_s: float
    request_id: str = ""
    """Total budget for the call (connect + first byte + body)."""
    traceparent: str = ""
    """W3C ``traceparent`` for the call's span, sent upstream when set (traced requests)."""


@dataclass(slots=True)
class UpstreamResponse:
    """A complete (non-streamed) upstream answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    endpoint: str = ""
    """The concrete endpoint URL that served it (for vLLM pools)."""
    parsed: Any = None
    """The body as parsed JSON, when the backend already parsed it (to check it) — never parsed twice."""


class UpstreamStream(Protocol):
    """An open upstream SSE stream. Iterate raw bytes; always ``aclose`` (closing stops generation)."""

    endpoint: str

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class BackendInfo:
    name: str
    type: str
    self_hosted: bool
    endpoints: list[str] = field(default_factory=list)


class Backend(Protocol):
    """A live model backend, as routing uses it (``serving.registry`` builds them from config)."""

    name: str
    info: BackendInfo
    accepts_metadata: bool
    """Whether the upstream takes the OpenAI ``metadata`` body field; when False it is not sent."""

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = ...) -> UpstreamResponse:
        """One complete answer; ``avoid`` names endpoints (of a pool) not to use for it."""
        ...

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = ...) -> UpstreamStream:
        """An open SSE stream whose status and headers were checked (nothing has reached the client yet)."""
        ...

    def reachable(self) -> bool:
        """Whether some endpoint passed its last health check (True where nothing is checked)."""
        ...

    async def list_models(self) -> list[str]:
        """The model ids the upstream serves, from its own list (raises ``UpstreamError`` when unreadable)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Backends(Protocol):
    """The live backends by name (``serving.registry.BackendRegistry``)."""

    def get(self, name: str) -> Backend | None: ...
