"""The one place errors become HTTP responses in the OpenAI error shape (and, for the Messages API, in
Anthropic's: ``anthropic_error``).

``ApiError`` is the gateway's own error; ``to_api_error`` maps the exceptions of the layers below
(``serving.errors``, ``routing.errors``, ``accounting.errors``, a request ``wire.anthropic`` cannot translate) to
it. Anything unexpected becomes a generic 500 whose details go only to the log.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.excerpt import excerpt
from gateway.upstream_headers import relayed
from serving.errors import (
    AUTH_STATUSES,
    BackendOverloaded,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamTruncated,
)
from wire.anthropic import errors as anthropic
from wire.anthropic.untranslatable import Untranslatable
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
        """The body as it is sent (an upstream's own OpenAI-shaped error document, or one an admin API built)."""
        self.anthropic_body: bytes | None = None
        """An Anthropic upstream's own error document (``{"type": "error", "error": {...}, ...}``): what a Messages
        API client gets, byte for byte, in place of ``anthropic_error``'s."""
        self.overloaded = False
        """The upstream said it is overloaded (Anthropic's 529): Messages API clients are told so."""
        self.relayed: list[tuple[bytes, bytes]] = []
        """The upstream's header lines that go with it (``gateway.upstream_headers``), under the client's names."""

    def body(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body
        return error_body(self.message, self.type, self.code, self.param)


OVERLOADED = 529
"""Anthropic's status for an overloaded API."""


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def compressed_body() -> ApiError:
    """415 for a request body sent with a ``Content-Encoding`` (the gateway reads and forwards JSON as sent)."""
    return ApiError(
        415,
        "Request bodies with a Content-Encoding (gzip, deflate, br, ...) are not accepted: send the JSON "
        "uncompressed.",
        "invalid_request_error",
        "unsupported_content_encoding",
    )


def previous_response_not_found(response_id: str) -> ApiError:
    """404 for ``previous_response_id`` naming a response another team made: the provider's answer for an id it
    does not know, so the caller learns nothing about the id (``routing.response_owners``)."""
    return ApiError(
        404,
        f"Previous response with id '{response_id}' not found.",
        "invalid_request_error",
        "previous_response_not_found",
        "previous_response_id",
    )


def item_not_found(item_id: str) -> ApiError:
    """404 for an input item citing (by ``id``) an item of a response another team made: the provider's answer for
    an item id it does not keep."""
    return ApiError(404, f"Item with id '{item_id}' not found.", "invalid_request_error", None, "input")


def conversation_not_found(conversation_id: str) -> ApiError:
    """404 for ``conversation`` naming a conversation another team's requests were added to: the provider's answer
    for a conversation id it does not know."""
    return ApiError(
        404,
        f"Conversation with id '{conversation_id}' not found.",
        "invalid_request_error",
        None,
        "conversation",
    )


def response_not_found(response_id: str) -> ApiError:
    """404 for a stored response a key may not read or delete (another team's, or one the gateway never relayed):
    the provider's answer for an id it does not know."""
    return ApiError(404, f"Response with id '{response_id}' not found.", "invalid_request_error", None, None)


def response_owners_unavailable() -> ApiError:
    """503 for a request citing a previous response while the record of their owners cannot be read and
    ``redis.on_unavailable`` is ``fail_closed``."""
    return ApiError(
        503,
        "The record of who made previous responses is unavailable; retry shortly.",
        "server_error",
        "response_owners_unavailable",
    )


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


def _document(body: bytes) -> Any:
    """An upstream error body's JSON document, else None."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _error_object(doc: Any) -> dict[str, Any] | None:
    """The ``error`` object of an error document in OpenAI's or Anthropic's shape, else None."""
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else None


def _text(value: Any) -> str:
    """A message member as text: a string as it is, anything else as compact JSON (never a Python repr)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _what_it_says(doc: Any) -> str | None:
    """What an upstream error document not in either API's shape says: FastAPI/vLLM's ``detail`` when a string,
    else the whole document as compact JSON (never a Python repr); None for no JSON document."""
    if doc is None:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("detail"), str):
        return str(doc["detail"])
    return _text(doc)


def _passthrough(exc: UpstreamHTTPError) -> ApiError:
    """An upstream error status, as the client should see it.

    - 401/403: the upstream refused the *gateway's* credential (or its access to the model) — a gateway-side
      failure, never the client's key: 502 ``upstream_auth_failed`` naming the backend; the upstream's message
      (which may echo part of the credential) is not relayed.
    - 5xx: 502 with the upstream's message but the gateway's type and code (``upstream_error``,
      ``upstream_server_error``).
    - other 4xx (the client's request was refused, 429 included), with the upstream's status:
      - a body in OpenAI's shape (``{"error": {...}}``) goes to OpenAI API clients byte for byte; one in
        Anthropic's (``{"type": "error", "error": {...}, ...}``) to Messages API clients. Clients of the other API
        get their own shape with its ``error.message`` and ``error.type``.
      - any other body (FastAPI/vLLM's ``{"detail": ...}``): the API's shape, type ``upstream_error``, code
        ``upstream_<status>``, the message ``upstream returned HTTP <status>: `` and what the body says (its
        ``detail`` string, else the whole document as compact JSON; a body that is not JSON, such as a proxy's
        HTML page: its excerpt, ``gateway.excerpt``).

    A 5xx's body that is not JSON is said the same way in its 502's message. ``retry-after`` and
    ``retry-after-ms`` go with the answer (``to_api_error`` adds the upstream's headers that every answer
    relays: ``gateway.upstream_headers``).
    """
    status = exc.status
    if status in AUTH_STATUSES:
        return ApiError(
            502,
            f"The upstream backend `{exc.backend}` refused the gateway's own credential (HTTP {status}). This "
            "is a gateway configuration problem, not your API key; the gateway's operators have to fix it.",
            "upstream_error",
            "upstream_auth_failed",
        )
    doc = _document(exc.body)
    page = excerpt(exc.body, exc.content_type) if doc is None else None
    e = _error_object(doc)
    headers: dict[str, str] = {}
    if exc.retry_after:
        headers["retry-after"] = exc.retry_after
    if exc.retry_after_ms:
        headers["retry-after-ms"] = exc.retry_after_ms
    if status >= 500:
        if e is not None:
            said = _text(e["message"]) if e.get("message") else None
        else:
            said = _what_it_says(doc)
        failed = f"The upstream backend `{exc.backend}` failed (HTTP {status})"
        if said:
            message = said[:500]
        else:
            message = f"{failed}: {page}" if page else f"{failed}."
        err = ApiError(502, message, "upstream_error", "upstream_server_error", headers=headers)
        err.overloaded = status == OVERLOADED
        return err
    err = ApiError(
        status, f"upstream returned HTTP {status}", "upstream_error", f"upstream_{status}", headers=headers
    )
    if e is not None:
        if e.get("message") is not None:
            err.message = _text(e["message"])
        err.type = str(e.get("type") or "upstream_error")
        if doc.get("type") == "error":  # Anthropic's
            err.anthropic_body = exc.body
            err.raw_body = error_body(err.message, err.type, e.get("code"), e.get("param"))
        else:
            err.raw_body = exc.body
    elif (said := _what_it_says(doc) if doc is not None else page) is not None:
        err.message = f"upstream returned HTTP {status}: {said}"
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
        err = _passthrough(exc)
        err.relayed = relayed(exc.headers)
        return err
    if isinstance(exc, UpstreamTimeout):
        return ApiError(504, "The upstream model timed out.", "timeout_error", "upstream_timeout")
    if isinstance(exc, UpstreamDisconnected):
        return ApiError(
            502,
            "The upstream closed the connection before its answer was complete.",
            "upstream_error",
            "upstream_disconnected",
        )
    if isinstance(exc, UpstreamTooLarge):
        return ApiError(502, exc.message, "upstream_error", "upstream_response_too_large")
    if isinstance(exc, UpstreamTruncated):
        return ApiError(
            502,
            "The upstream ended the stream before it was complete.",
            "upstream_error",
            "upstream_truncated",
        )
    if isinstance(exc, UpstreamConnectError):
        return ApiError(502, "The upstream model is unreachable.", "upstream_error", "upstream_unreachable")
    if isinstance(exc, UpstreamProtocolError):
        return ApiError(
            502, f"Invalid upstream response: {exc.message}", "upstream_error", "upstream_protocol"
        )
    if isinstance(exc, UpstreamError):
        return ApiError(502, "The upstream call failed.", "upstream_error", "upstream_error")
    if isinstance(exc, Untranslatable):
        return ApiError(
            400,
            f"`{exc.field}` cannot be sent to the backend serving this model, which speaks the Chat Completions "
            f"API: {exc.reason}.",
            "invalid_request_error",
            "untranslatable_field",
            exc.field,
        )
    mapped = getattr(exc, "api_error", None)
    if callable(mapped):
        status, message, type_, code, headers = mapped()
        return ApiError(status, message, type_, code, headers=headers)
    return ApiError(500, "Internal gateway error.", "server_error", "internal_error")


def anthropic_error(err: ApiError) -> tuple[int, bytes]:
    """(status, body) of ``err`` in Anthropic's error shape and status codes: an Anthropic upstream's own error
    type is kept, and its 529 (overloaded) too; otherwise the type is the one Anthropic gives the status. An
    Anthropic upstream's own 4xx document is passed as it is, with its status."""
    if err.anthropic_body is not None:
        return err.status, err.anthropic_body
    if err.overloaded:
        return OVERLOADED, anthropic.error_body(err.message, anthropic.error_type(OVERLOADED))
    status = anthropic.anthropic_status(err.status)
    own = err.raw_body is not None and err.type in anthropic.TYPES
    return status, anthropic.error_body(err.message, err.type if own else anthropic.error_type(status))
