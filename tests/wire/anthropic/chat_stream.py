"""Chat Completions streams as OpenAI-compatible servers send them, built from an answer (for the translator's
tests)."""

from __future__ import annotations

from typing import Any

import orjson


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    doc: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x", **extra}
    doc["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def chat_stream(
    texts: list[str],
    tools: list[tuple[str, str, list[str]]] = (),  # type: ignore[assignment]
    finish: str = "stop",
    usage: dict[str, Any] | None = None,
    done: bool = True,
) -> list[bytes]:
    """Role, text pieces, each tool call (id, name, argument pieces) in turn, the finish, usage, ``[DONE]``."""
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": t}) for t in texts]
    for i, (cid, name, pieces) in enumerate(tools):
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces]
    out.append(chunk({}, finish))
    if usage is not None:
        out.append(chunk(None, usage=usage))
    if done:
        out.append(b"data: [DONE]\n\n")
    return out
