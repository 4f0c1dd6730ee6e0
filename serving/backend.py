"""The small protocol every model backend implements.

A backend takes an OpenAI-shaped request body (JSON text ready to send: the model already rewritten to the upstream
id; see ``routing.upstream_call``) for one endpoint and returns either a complete response or a byte stream of
OpenAI SSE events; a backend that ``speaks_messages`` also takes Anthropic's Messages API as it is. Backends raise
only ``serving.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from serving.errors import UpstreamProtocolError


class Translation:
    """A call made in another protocol than its caller's (a Messages API request sent as Chat Completions): the
    answer is translated back (``serving.translation``)."""

    __slots__ = ("answer_as", "stop_sequences")

    answer_as: Final[str]
    """The endpoint whose format the caller reads (``messages``)."""
    stop_sequences: Final[tuple[str, ...]]
    """The request's stop sequences (a stop reason naming one is ``stop_sequence``)."""

    def __init__(self, answer_as: str, stop_sequences: tuple[str, ...] = ()) -> None:
        self.answer_as = answer_as
        self.stop_sequences = stop_sequences


class UpstreamCall:
    """One call to a backend."""

    __slots__ = (
        "endpoint",
        "body",
        "stream",
        "timeout_s",
        "request_id",
        "traceparent",
        "headers",
        "translation",
    )

    endpoint: str
    body: bytes
    """The JSON request body, as it is sent (a backend that needs the document parses it)."""
    stream: bool
    timeout_s: float
    request_id: str
    """Total budget for the call (connect + first byte + body)."""
    traceparent: str
    """W3C ``traceparent`` for the call's span, sent upstream when set (traced requests); always made by
    ``wire.traceparent`` (lower-case hex ids, validated when they come from the client), so sent as it is."""
    headers: Mapping[str, str] | None
    """Client headers forwarded as they are (``anthropic-version``, ``anthropic-beta`` to a backend that speaks
    the Messages API)."""
    translation: Translation | None
    """Set when ``body`` is a translation of the client's request: its answer is translated back."""

    def __init__(
        self,
        endpoint: str,
        body: bytes,
        stream: bool,
        timeout_s: float,
        request_id: str = "",
        traceparent: str = "",
        headers: Mapping[str, str] | None = None,
        translation: Translation | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.body = body
        self.stream = stream
        self.timeout_s = timeout_s
        self.request_id = request_id
        self.traceparent = traceparent
        self.headers = headers
        self.translation = translation


class UpstreamResponse:
    """A complete (non-streamed) upstream answer."""

    __slots__ = ("status", "body", "content_type", "endpoint", "parsed", "headers")

    status: int
    body: bytes
    content_type: str
    endpoint: str
    """The concrete endpoint URL that served it (for vLLM pools)."""
    parsed: Any
    """The body as parsed JSON, when the backend already parsed it (to check it) — never parsed twice."""
    headers: Sequence[tuple[bytes, bytes]]
    """The answer's header lines as received (lowercase names), where it came over HTTP: the gateway relays a few
    of them to the client (``gateway.upstream_headers``)."""

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        endpoint: str = "",
        parsed: Any = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.endpoint = endpoint
        self.parsed = parsed
        self.headers = headers

    def document(self, backend: str) -> dict[str, Any]:
        """The body as a JSON object (parsed here unless the backend already did); raises
        ``UpstreamProtocolError`` for anything else."""
        parsed = self.parsed
        if parsed is None:
            try:
                parsed = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                parsed = None
        if not isinstance(parsed, dict):
            raise UpstreamProtocolError("upstream sent invalid JSON", backend=backend, endpoint=self.endpoint)
        return parsed


class UpstreamStream(Protocol):
    """An open upstream SSE stream. Iterate raw bytes; always ``aclose`` (closing stops generation)."""

    endpoint: str
    headers: Sequence[tuple[bytes, bytes]]
    """The stream's header lines as received (lowercase names; none where it did not come over HTTP)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class BackendInfo:
    """What a backend reports of itself (its name, type, whether it is self-hosted, its endpoints)."""

    __slots__ = ("name", "type", "self_hosted", "endpoints")

    name: str
    type: str
    self_hosted: bool
    endpoints: list[str]

    def __init__(self, name: str, type: str, self_hosted: bool, endpoints: list[str] | None = None) -> None:
        self.name = name
        self.type = type
        self.self_hosted = self_hosted
        self.endpoints = [] if endpoints is None else endpoints


class Backend(Protocol):
    """A live model backend, as routing uses it (``serving.registry`` builds them from config)."""

    name: str
    info: BackendInfo
    accepts_metadata: bool
    """Whether the upstream takes the OpenAI ``metadata`` body field; when False it is not sent."""
    speaks_messages: bool
    """Whether the upstream takes Anthropic's Messages API (``messages``, ``messages/count_tokens``) natively;
    Messages requests to any other backend are translated to Chat Completions (``routing.upstream_call``)."""

    async def call(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamResponse:
        """One complete answer; ``avoid`` names endpoints (of a pool) not to use for it."""
        ...

    async def open_stream(self, call: UpstreamCall, avoid: frozenset[str] = frozenset()) -> UpstreamStream:
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
