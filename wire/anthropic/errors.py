"""Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``, its status codes, and the
``event: error`` that ends a failed stream."""

from __future__ import annotations

import orjson

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TYPES = frozenset(_TYPES.values())
"""Every error ``type`` Anthropic documents."""
_STATUSES = {431: 413, 503: 529}
"""Statuses the gateway answers that Anthropic spells differently: headers too large is its
``request_too_large`` (413); nothing healthy to serve is its ``overloaded_error`` (529)."""


def anthropic_status(status: int) -> int:
    """The status an Anthropic client gets for an error the gateway answers with ``status``."""
    return _STATUSES.get(status, status)


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an (Anthropic) status code."""
    found = _TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


_FROM_OPENAI = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "rate_limit_error": "rate_limit_error",
    "timeout_error": "timeout_error",
    "not_found_error": "not_found_error",
    "overloaded_error": "overloaded_error",
}


def type_of_openai(type_: str) -> str:
    """Anthropic's error ``type`` for an OpenAI-shaped error's (``upstream_error``, ``server_error``: api_error)."""
    return _FROM_OPENAI.get(type_, "api_error")


def error_body(message: str, type_: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def error_event(message: str, type_: str) -> bytes:
    """The SSE event that ends a stream which failed after it started."""
    return b"event: error\ndata: " + error_body(message, type_) + b"\n\n"


def error_of(doc: object) -> tuple[str, str] | None:
    """(type, message) of an Anthropic error document, else None."""
    if not isinstance(doc, dict) or doc.get("type") != "error":
        return None
    err = doc.get("error")
    if not isinstance(err, dict):
        return None
    return str(err.get("type") or "api_error"), str(err.get("message") or "")
