"""The OpenAI error shape: the JSON body of an error response, the event that ends a failed stream, and
reading that event back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wire.anthropic import errors as anthropic
from wire.endpoints import MESSAGES, RESPONSES


def error_body(
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``, with ``detail``'s fields after those when given."""
    err = {"message": message, "type": type_, "param": param, "code": code}
    return orjson.dumps({"error": {**err, **detail} if detail else err})


def error_event(
    endpoint: str, message: str, type_: str, code: str | None, sequence_number: int | None = None
) -> bytes:
    """The SSE bytes that end a stream which failed after it started: the Responses API's ``event: error``
    (``{"type": "error", "code", "message", "param", "sequence_number"}``, the number continuing the stream's,
    as clients that validate the event schema require), Anthropic's ``event: error`` for the Messages API, or for
    chat/completions an error-bodied ``data:`` event followed by ``data: [DONE]``."""
    if endpoint == MESSAGES:
        return anthropic.error_event(message, anthropic.type_of_openai(type_))
    if endpoint == RESPONSES:
        doc: dict[str, Any] = {"type": "error", "code": code, "message": message, "param": None}
        if sequence_number is not None:
            doc["sequence_number"] = sequence_number
        return b"event: error\ndata: " + orjson.dumps(doc) + b"\n\n"
    return b"data: " + error_body(message, type_, code) + b"\n\ndata: [DONE]\n\n"


def event_error(doc: dict[str, Any]) -> str | None:
    """The message of a stream event that reports an error (either shape above), else None."""
    err = doc.get("error")
    if err is not None and not doc.get("choices"):
        return str(err.get("message") if isinstance(err, dict) else err)
    if doc.get("type") == "error":
        return str(doc.get("message") or "error")
    return None
