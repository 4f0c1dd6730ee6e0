"""A Messages API stream's events put back together into the ``message`` the same request would have got
without ``stream``: ``message_start``'s message, each content block from its start and deltas (text, thinking
and its signature, a tool's ``input`` from its JSON pieces), the stop reason and cumulative usage of
``message_delta``. An ``error`` event is noted, not merged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from wire.anthropic.errors import error_of
from wire.usage import merge_messages_usage, parse_usage, reported_messages_usage

_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


def assemble_message(
    events: Iterable[tuple[str | None, Any]],
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(message, usage, error message) of a stream's parsed events (``wire.sse.json_events``); the usage is None
    when the stream reported none (``wire.usage.reported_messages_usage``)."""
    message: dict[str, Any] = {"type": "message", "role": "assistant", "content": []}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    usage: dict[str, Any] | None = None
    error: str | None = None
    for name, doc in events:
        if not isinstance(doc, dict):
            continue
        kind = doc.get("type", name)
        err = error_of(doc)
        if err is not None:
            error = err[1] or err[0]
            continue
        merged = merge_messages_usage(usage, doc)
        if merged is not None:
            usage = merged
        idx = doc.get("index")
        if kind == "message_start" and isinstance(doc.get("message"), dict):
            message = {**doc["message"], "content": []}
        elif (
            kind == "content_block_start"
            and isinstance(idx, int)
            and isinstance(doc.get("content_block"), dict)
        ):
            blocks[idx] = dict(doc["content_block"])
        elif kind == "content_block_delta" and isinstance(idx, int) and isinstance(doc.get("delta"), dict):
            _delta(blocks.setdefault(idx, {"type": "text", "text": ""}), partial, idx, doc["delta"])
        elif kind == "message_delta" and isinstance(doc.get("delta"), dict):
            for k, v in doc["delta"].items():
                message[k] = v
    for idx, pieces in partial.items():
        text = "".join(pieces)
        try:
            blocks[idx]["input"] = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError:
            blocks[idx]["input"] = text
    message["content"] = [blocks[i] for i in sorted(blocks)]
    if usage is not None:
        message["usage"] = usage
        if reported_messages_usage(parse_usage(usage)) is None:
            usage = None  # zeros: the upstream reported none
    return message, usage, error


def _delta(block: dict[str, Any], partial: dict[int, list[str]], idx: int, delta: dict[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "input_json_delta":
        pj = delta.get("partial_json")
        if isinstance(pj, str):
            partial.setdefault(idx, []).append(pj)
        return
    key = _TEXT_DELTAS.get(kind) if isinstance(kind, str) else None
    if key is None:
        return
    v = delta.get(key)
    if isinstance(v, str):
        prev = block.get(key)
        block[key] = (prev if isinstance(prev, str) else "") + v
