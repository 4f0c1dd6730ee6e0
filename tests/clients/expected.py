"""What every client in the matrix must get through the gateway: one definition, shared by all drivers.

A driver (one per client) runs the scenarios below and reports, per scenario, a JSON value in the shapes
given here; ``tests/clients/matrix.py`` compares them. Names are the scenario ids every driver uses.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.json_sample import sample
from tests.fakes.openai_upstream import embedding

UPSTREAM_NAME = "matrix"
MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
TEXT = f"Hello from {UPSTREAM_NAME} ({MODEL})"
USAGE = [11, 7]
"""[input tokens, output tokens] as the fake upstream reports them."""

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
TOOL_CALL = {"name": "get_weather", "arguments": sample(WEATHER_TOOL["parameters"])}
TOOL_RESULT = "sunny, 21 degrees"
AFTER_TOOL = f"The tool said: {TOOL_RESULT}"
"""The final answer of a two-step tool loop (the fake quotes the tool's result)."""

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
PERSON = sample(PERSON_SCHEMA)

EMBED_INPUTS = ["hello", "world"]
VECTORS = [embedding(t, 8) for t in EMBED_INPUTS]

LISTED_MODELS = sorted([MODEL, EMBEDDING_MODEL, "fake-model"])
"""``/v1/models`` for the matrix's client key: the exact names, and what the fake upstream lists that the
glob ``fake-*`` matches (sorted)."""

HEADERS = {
    "x-pointsman-route": "default",
    "x-pointsman-backend": "up",
    "x-pointsman-model": MODEL,
    "cost": True,
}
"""The gateway's headers on a served request (``cost``: ``x-pointsman-cost-usd`` is present)."""

SCOPED_KEY = "sk-test-scoped-0001"
"""A client key that may use only ``MODEL`` and ``EMBEDDING_MODEL``."""

# Models that make the gateway or the upstream fail (on the backend ``faulty``).
SCOPED_OUT_MODEL = "fake-not-for-scoped-key"
UNKNOWN_MODEL = "no-such-model"
UPSTREAM_5XX_MODEL = "fake-fail_500"
MID_STREAM_MODEL = "fake-reset_mid_stream"


def flaky_model(client: str) -> str:
    """A model whose every other request answers 429 (one per client: the fake counts per model)."""
    return f"fake-{client}-flaky_429"


MESSAGES = {
    401: "Incorrect API key provided.",
    403: f"This API key may not use the model `{SCOPED_OUT_MODEL}`.",
    404: f"The model `{UNKNOWN_MODEL}` does not exist or you do not have access to it.",
    502: "The server had an error while processing your request. Sorry about that! (fake 500)",
}
MID_STREAM_MESSAGE = "The upstream closed the connection before its answer was complete."


OFFICIAL_SDK_ERRORS = {
    "error_401": "AuthenticationError",
    "error_403": "PermissionDeniedError",
    "error_404": "NotFoundError",
    "error_5xx": "InternalServerError",
}
"""The official SDKs' (Python and Node) error class for each error scenario."""
OFFICIAL_SDK_STREAM_FAILURES = {
    "chat_stream_failure": {"error": "APIError", "message": MID_STREAM_MESSAGE},
    # the SDKs hand a Responses ``error`` event to the caller as an event
    "responses_stream_failure": {
        "event": "error",
        "message": MID_STREAM_MESSAGE,
        "sequence_number_follows": True,
    },
}


def error(cls: str, status: int) -> dict[str, Any]:
    return {"error": cls, "status": status, "message": MESSAGES[status]}


def inputs(base_url: str, client_key: str, client: str) -> dict[str, Any]:
    """What a driver in another language needs to run the scenarios (passed to it as JSON)."""
    return {
        "baseURL": base_url,
        "clientKey": client_key,
        "scopedKey": SCOPED_KEY,
        "model": MODEL,
        "embeddingModel": EMBEDDING_MODEL,
        "tool": WEATHER_TOOL,
        "toolResult": TOOL_RESULT,
        "personSchema": PERSON_SCHEMA,
        "embedInputs": EMBED_INPUTS,
        "models": {
            "scopedOut": SCOPED_OUT_MODEL,
            "unknown": UNKNOWN_MODEL,
            "upstream5xx": UPSTREAM_5XX_MODEL,
            "midStream": MID_STREAM_MODEL,
            "flaky": flaky_model(client),
        },
    }


def common(client: str, errors: dict[str, str]) -> dict[str, Any]:
    """Scenario -> expected value, for the scenarios whose result is the same in every client; ``errors``
    names the client's own error class for each error scenario."""
    return {
        "chat": {"content": TEXT, "usage": USAGE},
        "chat_stream": {"content": TEXT, "usage": None},
        "chat_stream_usage": {"content": TEXT, "usage": USAGE},
        "chat_n2": [TEXT, f"{TEXT} (choice 1)"],
        "tools": TOOL_CALL,
        "tools_stream": TOOL_CALL,
        "tools_multi_step": AFTER_TOOL,
        "structured": PERSON,
        "embeddings_float": VECTORS,
        "embeddings_base64": VECTORS,
        "responses": {"text": TEXT, "usage": USAGE},
        "responses_stream": {"text": TEXT, "usage": USAGE},
        "responses_tools": TOOL_CALL,
        "responses_tools_stream": TOOL_CALL,
        "responses_tools_multi_step": AFTER_TOOL,
        "responses_structured": PERSON,
        "logprobs": {"text": TEXT, "top": [2] * 5},
        "error_429_retry": {
            "content": f"Hello from {UPSTREAM_NAME} ({flaky_model(client)})",
            "upstream_attempts": 2,
        },
        "error_401": error(errors["error_401"], 401),
        "error_403": error(errors["error_403"], 403),
        "error_404": error(errors["error_404"], 404),
        "error_5xx": error(errors["error_5xx"], 502),
        "headers": HEADERS,
        "models": LISTED_MODELS,
    }


def for_client(
    client: str, errors: dict[str, str], own: dict[str, Any], not_covered: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Scenario -> expected value for one client: the common scenarios (less those it ``not_covered``: what
    the client cannot do, or does only through another scenario) and its ``own`` (how it surfaces a failed
    stream, which differs per client)."""
    table = {**common(client, errors), **own}
    assert not_covered <= table.keys(), not_covered - table.keys()
    return {k: v for k, v in table.items() if k not in not_covered}
