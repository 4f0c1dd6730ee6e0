"""What a model answered, from a complete response body or from relayed SSE events (off the request path).

``Output`` is what comparators see: the text of the first choice, its tool calls (function name + arguments
string, merged from stream deltas by index), the finish reason, and for embeddings the first vector. A Messages
API answer (both sides of a shadowed Messages request are read in that format, translated or not): its text
blocks, its ``tool_use`` blocks (the ``input`` as the arguments string) and its ``stop_reason``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from wire.answer import assemble
from wire.endpoints import COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from wire.usage import Usage, parse_usage


class ToolCall:
    """One tool call in an answer: the function's name and its arguments string."""

    __slots__ = ("name", "arguments")

    name: str
    arguments: str

    def __init__(
        self,
        name: str,
        arguments: str,
    ) -> None:
        self.name = name
        self.arguments = arguments

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "arguments": self.arguments}


class Output:
    """What a model answered, as comparators see it."""

    __slots__ = ("text", "tool_calls", "finish_reason", "vector", "error")

    text: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    vector: list[float] | None
    """First embedding (``/v1/embeddings``)."""
    error: str | None
    """A stream that ended with an error event (the answer is incomplete)."""

    def __init__(
        self,
        text: str = "",
        tool_calls: list[ToolCall] | None = None,
        finish_reason: str | None = None,
        vector: list[float] | None = None,
        error: str | None = None,
    ) -> None:
        self.text = text
        self.tool_calls = [] if tool_calls is None else tool_calls
        self.finish_reason = finish_reason
        self.vector = vector
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text}
        if self.tool_calls:
            d["tool_calls"] = [t.as_dict() for t in self.tool_calls]
        if self.finish_reason is not None:
            d["finish_reason"] = self.finish_reason
        if self.error:
            d["error"] = self.error
        return d


def from_body(endpoint: str, doc: Any) -> Output:
    """Output of a complete (non-streamed) response document."""
    out = Output()
    if not isinstance(doc, dict):
        return out
    if endpoint == EMBEDDINGS:
        data = doc.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            vec = data[0].get("embedding")
            if isinstance(vec, list):
                out.vector = [float(x) for x in vec if isinstance(x, int | float)]
        return out
    if endpoint == RESPONSES:
        _responses_output(doc.get("output"), out)
        return out
    if endpoint == MESSAGES:
        _message_output(doc, out)
        return out
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return out
    c0 = choices[0]
    fr = c0.get("finish_reason")
    out.finish_reason = fr if isinstance(fr, str) else None
    if endpoint == COMPLETIONS:
        t = c0.get("text")
        out.text = t if isinstance(t, str) else ""
        return out
    msg = c0.get("message")
    if isinstance(msg, dict):
        out.text = _content_text(msg.get("content"))
        tcs = msg.get("tool_calls")
        if isinstance(tcs, list):
            for tc in tcs:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    out.tool_calls.append(ToolCall(str(fn.get("name") or ""), str(fn.get("arguments") or "")))
    return out


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _responses_output(items: Any, out: Output) -> None:
    if not isinstance(items, list):
        return
    texts: list[str] = []
    for it in items:
        if not isinstance(it, dict):
            continue
        if it.get("type") == "message":
            for part in it.get("content") or []:
                if (
                    isinstance(part, dict)
                    and part.get("type") == "output_text"
                    and isinstance(part.get("text"), str)
                ):
                    texts.append(part["text"])
        elif it.get("type") == "function_call":
            out.tool_calls.append(ToolCall(str(it.get("name") or ""), str(it.get("arguments") or "")))
    out.text = "".join(texts)


def _message_output(doc: dict[str, Any], out: Output) -> None:
    """A Messages API answer: its text blocks, its ``tool_use`` blocks (``input`` as JSON), its ``stop_reason``."""
    texts: list[str] = []
    for block in doc.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            inp = block.get("input")
            args = inp if isinstance(inp, str) else orjson.dumps(inp).decode()
            out.tool_calls.append(ToolCall(str(block.get("name") or ""), args))
    out.text = "".join(texts)
    reason = doc.get("stop_reason")
    out.finish_reason = reason if isinstance(reason, str) else None


def from_events(endpoint: str, blocks: Iterable[bytes]) -> tuple[Output, Usage | None]:
    """The answer (and the last usage seen) in a stream's SSE event blocks."""
    answer = assemble(endpoint, blocks)
    out = from_body(endpoint, answer.body)
    out.error = answer.error
    return out, parse_usage(answer.usage)
