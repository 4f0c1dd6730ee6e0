"""What a captured exchange looks like once normalized: the request as sent, the answer as choices.

The hot path hands over the parsed request body and either the parsed response body or the raw SSE event
blocks of a stream; everything here runs in the capture writer thread. Streams are reassembled into the same
shape a non-streamed response has (content concatenated, tool-call deltas merged by index), so exports do not
care how a request was made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

CHAT, COMPLETIONS, RESPONSES = "chat/completions", "completions", "responses"
CAPTURED_ENDPOINTS = frozenset({CHAT, COMPLETIONS, RESPONSES})
_DROP_REQUEST_FIELDS = ("user", "stream_options", "safety_identifier", "prompt_cache_key")


@dataclass(slots=True)
class Trace:
    """One captured exchange, redacted, as stored."""

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
    """Choices: ``{"index", "message", "finish_reason"}`` (chat), ``{"index", "text", ...}`` (completions), or
    the Responses API ``output`` items."""
    usage: dict[str, Any] | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    prompt_hash: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "ts": self.ts, "expires_at": self.expires_at, "key": self.key,
            "team": self.team, "task": self.task, "route": self.route, "endpoint": self.endpoint,
            "requested_model": self.requested_model, "upstream_model": self.upstream_model,
            "backend": self.backend, "stream": self.stream, "status": self.status, "request": self.request,
            "output": self.output, "usage": self.usage, "redactions": self.redactions,
            "prompt_hash": self.prompt_hash, "tags": self.tags,
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
    return hashlib.sha256(orjson.dumps(basis, option=orjson.OPT_SORT_KEYS)).hexdigest()


def output_from_body(endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
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


def _payloads(events: Sequence[bytes]) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for every SSE event in the blocks (``[DONE]`` and bad JSON skipped)."""
    out: list[tuple[str | None, Any]] = []
    for block in events:
        for ev in block.split(b"\n\n"):
            if not ev.strip():
                continue
            name: str | None = None
            data: list[bytes] = []
            for line in ev.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[5:].strip())
                elif line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8", "replace")
            if not data:
                continue
            raw = b"\n".join(data)
            if raw == b"[DONE]":
                continue
            try:
                out.append((name, orjson.loads(raw)))
            except orjson.JSONDecodeError:
                continue
    return out


def output_from_events(endpoint: str, events: Sequence[bytes]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Reassemble a stream into the choices a non-streamed answer would have had, plus its usage."""
    payloads = _payloads(events)
    usage: dict[str, Any] | None = None
    if endpoint == RESPONSES:
        for name, doc in payloads:
            kind = doc.get("type") if isinstance(doc, dict) else None
            if (name or kind) in ("response.completed", "response.incomplete") and isinstance(doc, dict):
                resp = doc.get("response")
                if isinstance(resp, dict):
                    u = resp.get("usage")
                    return output_from_body(RESPONSES, resp), u if isinstance(u, dict) else None
        return [], None
    choices: dict[int, dict[str, Any]] = {}
    for _, doc in payloads:
        if not isinstance(doc, dict):
            continue
        u = doc.get("usage")
        if isinstance(u, dict):
            usage = u
        for c in doc.get("choices") or ():
            if not isinstance(c, dict):
                continue
            idx = c.get("index", 0)
            idx = idx if isinstance(idx, int) else 0
            acc = choices.setdefault(idx, {"index": idx, "finish_reason": None, "_text": [], "_tools": {},
                                           "_role": "assistant", "_refusal": []})
            if c.get("finish_reason"):
                acc["finish_reason"] = c["finish_reason"]
            if endpoint == COMPLETIONS:
                if isinstance(c.get("text"), str):
                    acc["_text"].append(c["text"])
                continue
            delta = c.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("role"), str):
                acc["_role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                acc["_text"].append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                acc["_refusal"].append(delta["refusal"])
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    _merge_tool_call(acc["_tools"], tc)
    result: list[dict[str, Any]] = []
    for idx in sorted(choices):
        acc = choices[idx]
        item: dict[str, Any] = {"index": idx, "finish_reason": acc["finish_reason"]}
        if endpoint == COMPLETIONS:
            item["text"] = "".join(acc["_text"])
        else:
            msg: dict[str, Any] = {"role": acc["_role"], "content": "".join(acc["_text"]) if acc["_text"] else None}
            if acc["_refusal"]:
                msg["refusal"] = "".join(acc["_refusal"])
            if acc["_tools"]:
                msg["tool_calls"] = [acc["_tools"][i] for i in sorted(acc["_tools"])]
            item["message"] = msg
        result.append(item)
    return result, usage


def _merge_tool_call(tools: dict[int, dict[str, Any]], tc: dict[str, Any]) -> None:
    idx = tc.get("index", len(tools))
    idx = idx if isinstance(idx, int) else len(tools)
    cur = tools.setdefault(idx, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(tc.get("id"), str):
        cur["id"] = tc["id"]
    if isinstance(tc.get("type"), str):
        cur["type"] = tc["type"]
    fn = tc.get("function")
    if isinstance(fn, dict):
        if isinstance(fn.get("name"), str):
            cur["function"]["name"] += fn["name"]
        if isinstance(fn.get("arguments"), str):
            cur["function"]["arguments"] += fn["arguments"]
