"""The one place errors become HTTP responses in the OpenAI error shape.

``ApiError`` is the gateway's own error; ``to_api_error`` maps the exceptions of the layers below
(``serving.errors``, ``routing.errors``, ``accounting.errors``) to it. Anything unexpected becomes a
generic 500 whose details go only to the log.
"""

from __future__ import annotations

import orjson

from serving.errors import (
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from wire.errors import error_body
from wire.json_object import MAX_DEPTH


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.raw_body: bytes | None = None

    def body(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body
        return error_body(self.message, self.type, self.code, self.param)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def too_deep() -> ApiError:
    return bad_request(f"The request body is nested deeper than {MAX_DEPTH} levels.", code="nesting_too_deep")


def unauthorized(message: str = "Invalid or missing API key.") -> ApiError:
    return ApiError(401, message, "authentication_error", "invalid_api_key")


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, "permission_error", "forbidden")


def not_found(message: str, param: str | None = None, code: str | None = "model_not_found") -> ApiError:
    return ApiError(404, message, "invalid_request_error", code, param)


def no_such(what: str, name: str) -> ApiError:
    """404 for an admin object (route, key, backend, ...) that does not exist."""
    return ApiError(404, f"There is no {what} named {name!r}.", "invalid_request_error", "not_found")


def already_exists(what: str, name: str) -> ApiError:
    """409 for creating an admin object whose name is taken."""
    return ApiError(
        409, f"A {what} named {name!r} already exists.", "invalid_request_error", "already_exists"
    )


def _passthrough(exc: UpstreamHTTPError) -> ApiError:
    """Upstream 4xx/5xx: keep its status; keep its body when it is already OpenAI-shaped JSON."""
    body = exc.body
    err = ApiError(
        exc.status, f"upstream returned HTTP {exc.status}", "upstream_error", f"upstream_{exc.status}"
    )
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        e = doc["error"]
        err.raw_body = error_body(
            str(e.get("message", err.message)),
            str(e.get("type") or "upstream_error"),
            e.get("code"),
            e.get("param"),
        )
    elif isinstance(doc, dict) and isinstance(doc.get("detail"), str | list):
        err.message = f"upstream returned HTTP {exc.status}: {str(doc['detail'])[:500]}"
    if exc.retry_after:
        err.headers["retry-after"] = exc.retry_after
    if exc.status >= 500:
        # A 5xx from upstream is a bad gateway for our client.
        err.status = 502
        err.type = "upstream_error"
    return err


def to_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BackendOverloaded):
        return ApiError(
            429,
            "The selected backend is at capacity; retry shortly.",
            "rate_limit_error",
            "backend_overloaded",
            headers={"retry-after": str(exc.retry_after_s)},
        )
    if isinstance(exc, UpstreamHTTPError):
        return _passthrough(exc)
    if isinstance(exc, UpstreamTimeout):
        return ApiError(504, "The upstream model timed out.", "timeout_error", "upstream_timeout")
    if isinstance(exc, UpstreamConnectError):
        return ApiError(502, "The upstream model is unreachable.", "upstream_error", "upstream_unreachable")
    if isinstance(exc, UpstreamProtocolError):
        return ApiError(
            502, f"Invalid upstream response: {exc.message}", "upstream_error", "upstream_protocol"
        )
    if isinstance(exc, UpstreamError):
        return ApiError(502, "The upstream call failed.", "upstream_error", "upstream_error")
    mapped = getattr(exc, "api_error", None)
    if callable(mapped):
        status, message, type_, code, headers = mapped()
        return ApiError(status, message, type_, code, headers=headers)
    return ApiError(500, "Internal gateway error.", "server_error", "internal_error")
