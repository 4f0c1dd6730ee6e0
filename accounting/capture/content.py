"""The content of one exchange as the observability exporters may show it: the conversation that was sent and
the answer, as chat messages, whatever endpoint carried them.

Content leaves pointsman on spans (``traces.content``) and analytics events (``posthog.content``) only for
teams approved for data capture, and always redacted (the capture service's strict redactor). The request path
only keeps references to what it already holds (``ContentSource``); everything here runs in an exporter's
batch, off the request path. Streams are reassembled with the one answer assembler (``wire.answer``).
"""

from __future__ import annotations

from typing import Any, Final

from accounting.capture.trace import output_from_body, output_from_events
from accounting.record import ContentSource
from wire.endpoints import CHAT, COMPLETIONS, RESPONSES

CONTENT_ENDPOINTS = frozenset({CHAT, COMPLETIONS, RESPONSES})

Message = dict[str, Any]


class ExchangeContent:
    """An exchange as chat messages (OpenAI's shape): what was sent, and one assistant message per choice."""

    __slots__ = ("input", "output")

    input: Final[list[Message]]
    output: Final[list[Message]]
    """Assistant messages, each with its ``finish_reason`` (None when the answer did not say)."""

    def __init__(self, input: list[Message], output: list[Message]) -> None:
        self.input = input
        self.output = output


def exchange_content(endpoint: str, src: ContentSource) -> ExchangeContent | None:
    """The conversation and answer of an exchange, or None for endpoints without one (embeddings)."""
    if endpoint not in CONTENT_ENDPOINTS:
        return None
    if src.response is not None:
        choices = output_from_body(endpoint, src.response)
    else:
        choices, _ = output_from_events(endpoint, src.events or ())
    return ExchangeContent(_input_messages(endpoint, src.request), _output_messages(endpoint, choices))


def _input_messages(endpoint: str, req: dict[str, Any]) -> list[Message]:
    if endpoint == CHAT:
        msgs = req.get("messages")
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []
    if endpoint == COMPLETIONS:
        prompt = req.get("prompt")
        return [{"role": "user", "content": prompt}] if prompt is not None else []
    out: list[Message] = []
    instructions = req.get("instructions")
    if isinstance(instructions, str):
        out.append({"role": "system", "content": instructions})
    items = req.get("input")
    if isinstance(items, str):
        out.append({"role": "user", "content": items})
    elif isinstance(items, list):
        out.extend(_responses_item(item) for item in items if isinstance(item, dict))
    return out


def _responses_item(item: dict[str, Any]) -> Message:
    """A Responses API input item as a chat message (messages, tool calls and their outputs)."""
    kind = item.get("type")
    if kind == "function_call":
        call = {"id": item.get("call_id"), "type": "function"}
        call["function"] = {"name": item.get("name"), "arguments": item.get("arguments")}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
    if "role" in item:
        return {"role": item["role"], "content": item.get("content")}
    return {"role": "user", "content": [item]}  # another item type, kept as a part


def _output_messages(endpoint: str, choices: list[dict[str, Any]]) -> list[Message]:
    if endpoint == RESPONSES:
        return _responses_output(choices)
    out: list[Message] = []
    for c in choices:
        if endpoint == CHAT:
            m = c.get("message")
            msg: Message = dict(m) if isinstance(m, dict) else {"role": "assistant", "content": None}
        else:
            msg = {"role": "assistant", "content": c.get("text")}
        msg["finish_reason"] = c.get("finish_reason")
        out.append(msg)
    return out


def _responses_output(items: list[dict[str, Any]]) -> list[Message]:
    """The Responses API ``output`` items as one assistant message (text parts joined, function calls)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "message":
            parts = item.get("content")
            for p in parts if isinstance(parts, list) else ():
                if isinstance(p, dict) and isinstance(p.get("text"), str):
                    texts.append(p["text"])
        elif item.get("type") == "function_call":
            fn = {"name": item.get("name"), "arguments": item.get("arguments")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": fn})
    if not texts and not calls:
        return []
    msg: Message = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    msg["finish_reason"] = "tool_calls" if calls else "stop"
    return [msg]
