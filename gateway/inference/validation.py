"""What the gateway checks in an inference body before routing it: JSON, its depth, each top-level member named
once, the required fields, a few ranges.

Cheap structural checks only; the upstream validates the rest and its 4xx is passed through. What passes is
forwardable: the body is sent upstream as the client wrote it (``wire.json_object``), and every part of the gateway
that serializes the parsed document again (shadow, capture, accounting) can.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.errors import bad_request, too_deep
from wire.endpoints import ANTHROPIC, CHAT, MESSAGES, REQUIRED_FIELD, RESPONSES, STREAMABLE
from wire.json_object import DuplicateMember, JsonObject, TooDeep

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never valid in a model name; would break the echoed headers


def parse_body(body: bytes, endpoint: str) -> JsonObject:
    """The request of ``endpoint`` (its bytes and its document), or a 400 saying what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # past orjson's own 1,024 levels: valid JSON, only too deep
            raise too_deep() from None
        if "infinity when parsed as double" in str(exc):  # valid JSON the gateway cannot read: say which
            raise bad_request(
                "The request body has a number beyond the range of a 64-bit float (about ±1.8e308), which the "
                "gateway cannot read; send it as a string.",
                code="number_out_of_range",
            ) from None
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    validate_body(doc, endpoint)
    try:
        return JsonObject(body, doc)
    except TooDeep:
        raise too_deep() from None
    except DuplicateMember as exc:
        raise bad_request(
            f"The request body names '{exc.key}' more than once.", exc.key, "duplicate_member"
        ) from None


_RANGES = (
    ("max_tokens", 0, 10_000_000, True),
    ("max_completion_tokens", 0, 10_000_000, True),
    ("max_output_tokens", 0, 10_000_000, True),
    ("n", 1, 128, True),
    ("temperature", 0, 2, False),
    ("top_p", 0, 1, False),
)
"""Numeric members checked, in the order they are: (name, lowest, highest, integer only)."""
_RANGED = frozenset(r[0] for r in _RANGES)


def _check_range(name: str, v: Any, lo: int, hi: int, integral: bool) -> None:
    if integral:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise bad_request(f"'{name}' must be an integer between {lo} and {hi}.", name, "invalid_value")
    elif not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be a number between {lo} and {hi}.", name, "invalid_value")


def _all_objects(items: list[Any]) -> bool:
    for m in items:
        if type(m) is not dict:
            return False
    return True


def validate_body(doc: Any, endpoint: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise bad_request("The request body must be a JSON object.")
    model = doc.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise bad_request(
            "'model' is required and must be a non-empty string.", "model", "missing_required_parameter"
        )
    if _CONTROL.search(model):
        raise bad_request("'model' must not contain control characters.", "model", "invalid_value")
    field = REQUIRED_FIELD[endpoint]
    v = doc.get(field)
    if endpoint == CHAT or endpoint in ANTHROPIC:
        if type(v) is not list or not v or not _all_objects(v):
            raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    elif endpoint == RESPONSES:
        if v is None and doc.get("previous_response_id") is None:
            raise bad_request("'input' is required.", "input", "missing_required_parameter")
        if doc.get("background") is True:  # its cost comes later, where the gateway cannot see it
            raise bad_request(
                "Background responses ('background': true) are not supported through pointsman: the provider "
                "finishes them after the request ends, so the gateway could neither account for their tokens and "
                "cost nor route the polling (GET /v1/responses/{id}) that fetches them. Send the request without "
                "'background' (streamed, for a long one).",
                "background",
                "unsupported_parameter",
            )
    elif v is None:
        raise bad_request(f"'{field}' is required.", field, "missing_required_parameter")
    stream = doc.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", "stream")
    if stream and endpoint not in STREAMABLE:
        raise bad_request(f"Streaming is not supported for /v1/{endpoint}.", "stream")
    if not _RANGED.isdisjoint(doc):
        for name, lo, hi, integral in _RANGES:
            n = doc.get(name)
            if n is not None:
                _check_range(name, n, lo, hi, integral)
    md = doc.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise bad_request("'metadata' must be an object.", "metadata")
    so = doc.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    if endpoint in ANTHROPIC:
        _check_messages(doc, endpoint)
    return doc


def _check_messages(doc: dict[str, Any], endpoint: str) -> None:
    """What the Messages API requires beyond the shared checks: ``max_tokens`` (when generating), a ``system``
    that is a string or blocks, a ``temperature`` of at most 1, roles user and assistant."""
    if endpoint == MESSAGES:
        if "max_tokens" not in doc:
            raise bad_request("'max_tokens' is required.", "max_tokens", "missing_required_parameter")
        _check_range("max_tokens", doc["max_tokens"], 1, 10_000_000, True)
    system = doc.get("system")
    if system is not None and not isinstance(system, str | list):
        raise bad_request("'system' must be a string or an array of text blocks.", "system")
    t = doc.get("temperature")
    if t is not None:
        _check_range("temperature", t, 0, 1, False)
    for i, m in enumerate(doc["messages"]):
        if m.get("role") not in ("user", "assistant"):
            raise bad_request(f"'messages[{i}].role' must be 'user' or 'assistant'.", f"messages[{i}].role")
        if not isinstance(m.get("content"), str | list):
            raise bad_request(
                f"'messages[{i}].content' must be a string or an array of content blocks.",
                f"messages[{i}].content",
            )
