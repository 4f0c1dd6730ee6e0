"""Anthropic's Messages API request shape, as its API reference publishes it, for the fake upstream to refuse
what the real API refuses (``400 invalid_request_error`` naming the field).

Checked: the headers (``x-api-key``, ``anthropic-version``); top-level members (unknown ones are refused, as the
API does: "Extra inputs are not permitted"); ``model``, ``max_tokens``, ``messages`` (roles, content as a string
or typed blocks with their required fields: text, image and document sources, tool_use, tool_result,
thinking, redacted_thinking; ``cache_control``), that every ``tool_use`` is answered by a ``tool_result`` in the
next user turn; ``system``; ``tools`` (custom tools need an object ``input_schema``) and ``tool_choice``;
``metadata`` (``user_id`` only); ``stop_sequences``; sampling ranges; ``thinking`` (``budget_tokens`` of at
least 1024 and below ``max_tokens``); ``stream``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOP_LEVEL = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
    }
)
COUNT_TOP_LEVEL = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


class Invalid(ValueError):
    """What the API would answer 400 for."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise Invalid(message)


def check_headers(headers: Mapping[str, str]) -> None:
    _require(bool(headers.get("anthropic-version")), "anthropic-version: header is required")


def _cache_control(b: dict[str, Any], at: str) -> None:
    cc = b.get("cache_control")
    if cc is None:
        return
    _require(
        isinstance(cc, dict) and cc.get("type") == "ephemeral",
        f"{at}.cache_control.type: must be 'ephemeral'",
    )
    _require(cc.get("ttl") in (None, "5m", "1h"), f"{at}.cache_control.ttl: must be '5m' or '1h'")


def _fields(b: dict[str, Any], at: str, allowed: set[str]) -> None:
    for k in b:
        _require(k in allowed | {"type", "cache_control"}, f"{at}.{k}: Extra inputs are not permitted")


def _source(src: Any, at: str, kinds: dict[str, set[str]]) -> None:
    _require(isinstance(src, dict) and src.get("type") in kinds, f"{at}.source.type: invalid source")
    _fields(src, f"{at}.source", kinds[src["type"]])
    for k in kinds[src["type"]]:
        _require(k in src, f"{at}.source.{k}: Field required")


def check_block(b: Any, at: str, role: str) -> None:
    _require(isinstance(b, dict) and isinstance(b.get("type"), str), f"{at}: must be a content block")
    kind = b["type"]
    _cache_control(b, at)
    if kind == "text":
        _fields(b, at, {"text", "citations"})
        _require(
            isinstance(b.get("text"), str) and b["text"] != "",
            f"{at}.text: text content blocks must be non-empty",
        )
    elif kind == "image":
        _fields(b, at, {"source"})
        _source(b.get("source"), at, {"base64": {"media_type", "data"}, "url": {"url"}, "file": {"file_id"}})
        if b["source"]["type"] == "base64":
            _require(
                b["source"]["media_type"] in IMAGE_TYPES, f"{at}.source.media_type: unsupported image type"
            )
    elif kind == "document":
        _fields(b, at, {"source", "title", "context", "citations"})
        _source(
            b.get("source"),
            at,
            {
                "base64": {"media_type", "data"},
                "text": {"media_type", "data"},
                "url": {"url"},
                "content": {"content"},
                "file": {"file_id"},
            },
        )
    elif kind == "tool_use":
        _require(role == "assistant", f"{at}: tool_use blocks are only allowed in assistant messages")
        _fields(b, at, {"id", "name", "input"})
        _require(
            isinstance(b.get("id"), str) and isinstance(b.get("name"), str), f"{at}: id and name are required"
        )
        _require(isinstance(b.get("input"), dict), f"{at}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        _require(role == "user", f"{at}: tool_result blocks are only allowed in user messages")
        _fields(b, at, {"tool_use_id", "content", "is_error"})
        _require(isinstance(b.get("tool_use_id"), str), f"{at}.tool_use_id: Field required")
        c = b.get("content")
        if isinstance(c, list):
            for k, p in enumerate(c):
                check_block(p, f"{at}.content.{k}", role)
        else:
            _require(c is None or isinstance(c, str), f"{at}.content: must be a string or blocks")
    elif kind in ("thinking", "redacted_thinking"):
        _require(role == "assistant", f"{at}: {kind} blocks are only allowed in assistant messages")
        needed = {"thinking", "signature"} if kind == "thinking" else {"data"}
        _fields(b, at, needed)
        for k in needed:
            _require(isinstance(b.get(k), str), f"{at}.{k}: Field required")
    else:
        raise Invalid(f"{at}.type: unknown content block type {kind!r}")


def check_request(doc: Any, counting: bool = False) -> None:
    _require(isinstance(doc, dict), "body: must be an object")
    for k in doc:
        _require(k in (COUNT_TOP_LEVEL if counting else TOP_LEVEL), f"{k}: Extra inputs are not permitted")
    _require(isinstance(doc.get("model"), str) and doc["model"], "model: Field required")
    if not counting:
        mt = doc.get("max_tokens")
        _require(isinstance(mt, int) and not isinstance(mt, bool) and mt >= 1, "max_tokens: Field required")
    msgs = doc.get("messages")
    _require(isinstance(msgs, list) and len(msgs) > 0, "messages: at least one message is required")
    pending: set[str] = set()
    for i, m in enumerate(msgs):
        at = f"messages.{i}"
        _require(isinstance(m, dict), f"{at}: must be an object")
        _fields(m, at, {"role", "content"})
        role = m.get("role")
        _require(role in ("user", "assistant"), f"{at}.role: Input should be 'user' or 'assistant'")
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        _require(isinstance(blocks, list), f"{at}.content: must be a string or blocks")
        if isinstance(content, str):
            _require(
                bool(content) or (role == "assistant" and i == len(msgs) - 1),
                f"{at}.content: must be non-empty",
            )
        else:
            for j, b in enumerate(blocks):
                check_block(b, f"{at}.content.{j}", role)
        answered = {
            b["tool_use_id"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        _require(
            not pending or pending <= answered,
            f"{at}: tool_use ids were found without tool_result blocks immediately after: {sorted(pending - answered)}",
        )
        pending = {b["id"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"}
    system = doc.get("system")
    if isinstance(system, list):
        for j, b in enumerate(system):
            _require(isinstance(b, dict) and b.get("type") == "text", f"system.{j}: only text blocks")
            check_block(b, f"system.{j}", "user")
    else:
        _require(system is None or isinstance(system, str), "system: must be a string or text blocks")
    tools = doc.get("tools")
    _require(tools is None or isinstance(tools, list), "tools: Input should be a valid list")
    for i, t in enumerate(tools or ()):
        _require(isinstance(t, dict) and isinstance(t.get("name"), str), f"tools.{i}.name: Field required")
        if t.get("type") in (None, "custom"):
            _fields(t, f"tools.{i}", {"name", "description", "input_schema"})
            schema = t.get("input_schema")
            _require(
                isinstance(schema, dict) and schema.get("type") == "object",
                f"tools.{i}.input_schema.type: must be 'object'",
            )
    tc = doc.get("tool_choice")
    if tc is not None:
        _require(
            isinstance(tc, dict) and tc.get("type") in ("auto", "any", "tool", "none"),
            "tool_choice.type: invalid",
        )
        _require(tc["type"] != "tool" or isinstance(tc.get("name"), str), "tool_choice.name: Field required")
    md = doc.get("metadata")
    if md is not None:
        _require(isinstance(md, dict), "metadata: must be an object")
        for k in md:
            _require(k == "user_id", f"metadata.{k}: Extra inputs are not permitted")
    stops = doc.get("stop_sequences")
    _require(
        stops is None or (isinstance(stops, list) and all(isinstance(s, str) for s in stops)),
        "stop_sequences: must be strings",
    )
    for name, hi in (("temperature", 1.0), ("top_p", 1.0)):
        v = doc.get(name)
        _require(
            v is None or (isinstance(v, int | float) and 0 <= v <= hi), f"{name}: must be between 0 and {hi}"
        )
    thinking = doc.get("thinking")
    if thinking is not None:
        _require(
            isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"),
            "thinking.type: invalid",
        )
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            _require(
                isinstance(budget, int) and budget >= 1024, "thinking.budget_tokens: must be at least 1024"
            )
            _require(
                counting or budget < doc["max_tokens"],
                "max_tokens: must be greater than thinking.budget_tokens",
            )
    _require(doc.get("stream") in (None, True, False), "stream: must be a boolean")
