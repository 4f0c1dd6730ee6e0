"""What a captured exchange looks like once normalized: the request as sent, the answer as choices.

The hot path hands over the parsed request body and either the parsed response body or the raw SSE event
blocks of a stream; everything here runs in the capture writer thread. Streams are reassembled
(``wire.answer``) into the same shape a non-streamed response has, so exports do not care how a request was
made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from wire.answer import assemble
from wire.endpoints import CHAT, COMPLETIONS, MESSAGES, RESPONSES

CAPTURED_ENDPOINTS = frozenset({CHAT, COMPLETIONS, RESPONSES, MESSAGES})
_MESSAGE_FIELDS = ("role", "content", "stop_reason", "stop_sequence")
_DROP_REQUEST_FIELDS = ("user", "stream_options", "safety_identifier", "prompt_cache_key")


class Trace:
    """One captured exchange, redacted, as stored."""

    __slots__ = (
        "request_id",
        "ts",
        "expires_at",
        "key",
        "team",
        "task",
        "route",
        "endpoint",
        "requested_model",
        "upstream_model",
        "backend",
        "stream",
        "status",
        "request",
        "output",
        "usage",
        "redactions",
        "prompt_hash",
        "tags",
    )

    request_id: str
    ts: float
    expires_at: float
    key: str
    team: str | None
    task: str | None
    route: str
    endpoint: str
    requested_model: str
    upstream_model: str
    backend: str
    stream: bool
    status: int
    request: dict[str, Any]
    """The request body (redacted), minus end-user identifiers (``user``) and transport options."""
    output: list[dict[str, Any]]
    """Choices: ``{"index", "message", "finish_reason"}`` (chat), ``{"index", "text", ...}`` (completions), the
    Responses API ``output`` items, or the Messages API answer (``{"role", "content", "stop_reason",
    "stop_sequence"}``) as the one item."""
    usage: dict[str, Any] | None
    redactions: dict[str, int]
    prompt_hash: str
    tags: dict[str, str]

    def __init__(
        self,
        request_id: str,
        ts: float,
        expires_at: float,
        key: str,
        team: str | None,
        task: str | None,
        route: str,
        endpoint: str,
        requested_model: str,
        upstream_model: str,
        backend: str,
        stream: bool,
        status: int,
        request: dict[str, Any],
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        redactions: dict[str, int] | None = None,
        prompt_hash: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.request_id = request_id
        self.ts = ts
        self.expires_at = expires_at
        self.key = key
        self.team = team
        self.task = task
        self.route = route
        self.endpoint = endpoint
        self.requested_model = requested_model
        self.upstream_model = upstream_model
        self.backend = backend
        self.stream = stream
        self.status = status
        self.request = request
        self.output = output
        self.usage = usage
        self.redactions = {} if redactions is None else redactions
        self.prompt_hash = prompt_hash
        self.tags = {} if tags is None else tags

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "ts": self.ts,
            "expires_at": self.expires_at,
            "key": self.key,
            "team": self.team,
            "task": self.task,
            "route": self.route,
            "endpoint": self.endpoint,
            "requested_model": self.requested_model,
            "upstream_model": self.upstream_model,
            "backend": self.backend,
            "stream": self.stream,
            "status": self.status,
            "request": self.request,
            "output": self.output,
            "usage": self.usage,
            "redactions": self.redactions,
            "prompt_hash": self.prompt_hash,
            "tags": self.tags,
        }


def clean_request(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for k in _DROP_REQUEST_FIELDS:
        out.pop(k, None)
    return out


def prompt_hash(endpoint: str, request: dict[str, Any]) -> str:
    """A stable hash of what was asked (the prompt and the tools; not sampling parameters)."""
    basis = {
        "endpoint": endpoint,
        "messages": request.get("messages"),
        "prompt": request.get("prompt"),
        "input": request.get("input"),
        "instructions": request.get("instructions"),
        "tools": request.get("tools"),
    }
    if endpoint == MESSAGES:
        basis["system"] = request.get("system")
    return hashlib.sha256(orjson.dumps(basis, option=orjson.OPT_SORT_KEYS)).hexdigest()


def output_from_body(endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if endpoint == MESSAGES:
        return [{k: body[k] for k in _MESSAGE_FIELDS if k in body}]
    if endpoint == RESPONSES:
        out = body.get("output")
        return [x for x in out if isinstance(x, dict)] if isinstance(out, list) else []
    choices = body.get("choices")
    if not isinstance(choices, list):
        return []
    result: list[dict[str, Any]] = []
    for i, c in enumerate(choices):
        if not isinstance(c, dict):
            continue
        item: dict[str, Any] = {"index": c.get("index", i), "finish_reason": c.get("finish_reason")}
        if endpoint == CHAT:
            msg = c.get("message")
            item["message"] = msg if isinstance(msg, dict) else {"role": "assistant", "content": None}
        else:
            item["text"] = c.get("text") if isinstance(c.get("text"), str) else ""
        result.append(item)
    return result


def output_from_events(
    endpoint: str, events: Sequence[bytes]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Reassemble a stream into the choices a non-streamed answer would have had, plus its usage."""
    answer = assemble(endpoint, events)
    return output_from_body(endpoint, answer.body), answer.usage
