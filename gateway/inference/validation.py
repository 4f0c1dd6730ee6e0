"""What the gateway checks in an inference body before routing it: JSON, the required fields, a few ranges.

Cheap structural checks only; the upstream validates the rest and its 4xx is passed through.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.errors import bad_request
from wire.endpoints import CHAT, REQUIRED_FIELD, RESPONSES, STREAMABLE

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never valid in a model name; would break the echoed headers


def parse_body(body: bytes, endpoint: str) -> dict[str, Any]:
    """The request document of ``endpoint``, or a 400 saying what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    return validate_body(doc, endpoint)


def _int_field(doc: dict[str, Any], name: str, lo: int, hi: int) -> None:
    v = doc.get(name)
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be an integer between {lo} and {hi}.", name, "invalid_value")


def _num_field(doc: dict[str, Any], name: str, lo: float, hi: float) -> None:
    v = doc.get(name)
    if v is None:
        return
    if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be a number between {lo} and {hi}.", name, "invalid_value")


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
    if endpoint == CHAT:
        if not isinstance(v, list) or not v or not all(isinstance(m, dict) for m in v):
            raise bad_request("'messages' must be a non-empty array of message objects.", "messages")
    elif endpoint == RESPONSES:
        if v is None and doc.get("previous_response_id") is None:
            raise bad_request("'input' is required.", "input", "missing_required_parameter")
    elif v is None:
        raise bad_request(f"'{field}' is required.", field, "missing_required_parameter")
    stream = doc.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", "stream")
    if stream and endpoint not in STREAMABLE:
        raise bad_request(f"Streaming is not supported for /v1/{endpoint}.", "stream")
    _int_field(doc, "max_tokens", 0, 10_000_000)
    _int_field(doc, "max_completion_tokens", 0, 10_000_000)
    _int_field(doc, "max_output_tokens", 0, 10_000_000)
    _int_field(doc, "n", 1, 128)
    _num_field(doc, "temperature", 0, 2)
    _num_field(doc, "top_p", 0, 1)
    md = doc.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise bad_request("'metadata' must be an object.", "metadata")
    so = doc.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    return doc
