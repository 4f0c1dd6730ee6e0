"""What a model answered, from a complete response body or from relayed SSE events (off the request path).

``Output`` is what comparators see: the text of the first choice, its tool calls (function name + arguments
string, merged from stream deltas by index), the finish reason, and for embeddings the first vector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from accounting.usage import Usage, usage_from_response

CHAT = "chat/completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(slots=True)
class Output:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    vector: list[float] | None = None
    """First embedding (``/v1/embeddings``)."""
    error: str | None = None
    """A stream that ended with an error event (the answer is incomplete)."""

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
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
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
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
        elif it.get("type") == "function_call":
            out.tool_calls.append(ToolCall(str(it.get("name") or ""), str(it.get("arguments") or "")))
    out.text = "".join(texts)


def split_events(blocks: Iterable[bytes]) -> list[bytes]:
    """``data:`` payloads of every SSE event in relayed blocks (one block may hold several events)."""
    payloads: list[bytes] = []
    for block in blocks:
        for ev in block.replace(b"\r\n", b"\n").split(b"\n\n"):
            if not ev.strip():
                continue
            parts = [line[5:].strip() for line in ev.split(b"\n") if line.startswith(b"data:")]
            if parts:
                payloads.append(b"\n".join(parts))
    return payloads


def from_events(endpoint: str, blocks: Iterable[bytes]) -> tuple[Output, Usage | None]:
    """Assemble the answer (and the last usage seen) from a stream's SSE event blocks."""
    out = Output()
    usage: Usage | None = None
    texts: list[str] = []
    calls: dict[int, list[str]] = {}
    completed: Any = None
    for payload in split_events(blocks):
        if payload == b"[DONE]":
            continue
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        u = usage_from_response(doc)
        if u is not None:
            usage = u
        if "error" in doc and not doc.get("choices"):
            err = doc.get("error")
            out.error = str(err.get("message") if isinstance(err, dict) else err)
            continue
        if endpoint == RESPONSES:
            kind = doc.get("type")
            if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
                texts.append(doc["delta"])
            elif kind == "response.completed" and isinstance(doc.get("response"), dict):
                completed = doc["response"]
            elif kind == "error":
                out.error = str(doc.get("message") or "error")
            continue
        choices = doc.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            continue
        c0 = choices[0]
        if isinstance(c0.get("finish_reason"), str):
            out.finish_reason = c0["finish_reason"]
        if endpoint == COMPLETIONS:
            if isinstance(c0.get("text"), str):
                texts.append(c0["text"])
            continue
        delta = c0.get("delta")
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            texts.append(delta["content"])
        tcs = delta.get("tool_calls")
        if isinstance(tcs, list):
            for tc in tcs:
                if not isinstance(tc, dict):
                    continue
                raw_idx = tc.get("index")
                idx = raw_idx if isinstance(raw_idx, int) else len(calls)
                slot = calls.setdefault(idx, ["", ""])
                fn = tc.get("function")
                if isinstance(fn, dict):
                    if isinstance(fn.get("name"), str):
                        slot[0] += fn["name"]
                    if isinstance(fn.get("arguments"), str):
                        slot[1] += fn["arguments"]
    if endpoint == RESPONSES and completed is not None:
        done = Output()
        _responses_output(completed.get("output"), done)
        done.error = out.error
        return done, usage
    out.text = "".join(texts)
    out.tool_calls = [ToolCall(n, a) for _, (n, a) in sorted(calls.items())]
    return out, usage
