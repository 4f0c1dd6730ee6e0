"""Errors raised at the serving boundary.

Backends raise only these: the HTTP client (``serving.http_client``) raises them itself, litellm's and OS errors are
translated into the most specific one, chained with ``from exc``. The gateway maps them to HTTP in one place.

    UpstreamError
    ├── UpstreamConnectError      connection refused / reset before a response   -> 502
    │   └── UpstreamDisconnected  the connection closed while the answer came    -> 502
    ├── UpstreamTimeout           connect or read timeout                        -> 504
    ├── UpstreamProtocolError     invalid JSON, wrong content type, broken SSE   -> 502
    │   ├── UpstreamTooLarge      an answer or event past the configured bounds  -> 502
    │   └── UpstreamTruncated     a stream that ended before its end (``[DONE]``) -> error event
    └── UpstreamHTTPError         the upstream answered with a 4xx/5xx status    -> passed through (401/403:
                                  502 ``upstream_auth_failed``; 5xx: 502)
"""

from __future__ import annotations

from collections.abc import Sequence


class UpstreamError(Exception):
    """An upstream call failed. ``retryable`` tells routing whether a fallback may be tried."""

    retryable: bool = True
    error_type: str = "upstream"

    def __init__(self, message: str, *, backend: str = "", endpoint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.endpoint = endpoint


class UpstreamConnectError(UpstreamError):
    error_type = "connect"


class UpstreamDisconnected(UpstreamConnectError):
    """The upstream closed (or reset) the connection after it had started answering."""

    error_type = "disconnect"


class UpstreamTimeout(UpstreamError):
    error_type = "timeout"


class UpstreamProtocolError(UpstreamError):
    error_type = "protocol"


class UpstreamTooLarge(UpstreamProtocolError):
    """An answer (after decompression) or one stream event larger than the gateway holds. Not retried: the same
    request would most likely get the same answer, and the upstream has already been paid for it."""

    retryable = False
    error_type = "too_large"


class UpstreamTruncated(UpstreamProtocolError):
    """A stream that ended (cleanly, at the transport level) before its own end: no ``data: [DONE]``, or no
    final Responses API event."""

    error_type = "truncated"


AUTH_STATUSES = frozenset({401, 403})
"""Upstream statuses that mean the upstream refused the gateway's own credential (or its access to a model)."""


class UpstreamHTTPError(UpstreamError):
    """The upstream answered with an error status; ``body`` is its raw body (OpenAI-shaped or not)."""

    def __init__(
        self,
        status: int,
        body: bytes,
        *,
        backend: str = "",
        endpoint: str = "",
        retry_after: str | None = None,
        content_type: str = "application/json",
        retry_after_ms: str | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(f"upstream returned HTTP {status}", backend=backend, endpoint=endpoint)
        self.status = status
        self.body = body
        """The body as received (bounded), the backend's own credentials masked in it (``serving.http_backend``)."""
        self.retry_after = retry_after
        self.retry_after_ms = retry_after_ms
        """OpenAI's ``retry-after-ms``, forwarded with ``retry-after``."""
        self.content_type = content_type
        self.headers = headers
        """The answer's header lines as received (lowercase names): the gateway relays a few of them."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """429 and 5xx, and a refused credential (another backend's may work; the client's request is fine)."""
        return self.status == 429 or self.status >= 500 or self.status in AUTH_STATUSES

    @property
    def error_type(self) -> str:  # type: ignore[override]
        if self.status == 429:
            return "http_429"
        if self.status in AUTH_STATUSES:
            return "auth"
        return "http_5xx" if self.status >= 500 else "http_4xx"


class BackendOverloaded(UpstreamError):
    """The backend's concurrency cap is reached; shed with 429 + Retry-After instead of queueing."""

    error_type = "overloaded"

    def __init__(self, message: str, *, backend: str = "", retry_after_s: int = 1) -> None:
        super().__init__(message, backend=backend)
        self.retry_after_s = retry_after_s
