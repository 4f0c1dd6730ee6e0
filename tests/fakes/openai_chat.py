"""Chat Completions objects as the OpenAI API sends them: the completion, and the chunk sequence of a stream.

Shapes follow the API's published schema (``CreateChatCompletionResponse``,
``CreateChatCompletionStreamResponse``): assistant messages with ``refusal`` and ``annotations``, tool calls
whose arguments stream as deltas after a first chunk that names the call, one chunk series per choice when
``n > 1``, ``logprobs`` when asked, ``usage: null`` on every chunk and a final usage-only chunk when the
request set ``stream_options.include_usage``.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.openai_answers import Answer

Paced = tuple[dict[str, Any], bool]
"""An event and whether the fake waits ``chunk_delay`` before it (the generated pieces are paced)."""

FINGERPRINT = "fp_fake0001"


def split(text: str, n: int) -> list[str]:
    """``text`` in ``n`` roughly equal pieces (one piece when shorter than ``n``)."""
    if n <= 1 or len(text) < n:
        return [text]
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def token_logprobs(pieces: list[str], top: int) -> list[dict[str, Any]]:
    """One logprob entry per piece (the fake's tokens), with ``top`` alternatives each."""
    out = []
    for p in pieces:
        alts = [p] + [f"{p}~{k}" for k in range(1, top)]
        out.append(
            {
                "token": p,
                "logprob": -0.25,
                "bytes": list(p.encode()),
                "top_logprobs": [
                    {"token": a, "logprob": -0.25 * (k + 1), "bytes": list(a.encode())}
                    for k, a in enumerate(alts[:top])
                ],
            }
        )
    return out


def _logprobs_option(body: dict[str, Any]) -> int | None:
    """None when the request did not ask for logprobs, else the number of alternatives per token."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and top >= 0 else 0


def completion(
    body: dict[str, Any], answers: list[Answer], usage: dict[str, Any] | None, chunks: int
) -> dict[str, Any]:
    top = _logprobs_option(body)
    choices = []
    for i, a in enumerate(answers):
        msg: dict[str, Any] = {"role": "assistant", "content": a.text, "refusal": None, "annotations": []}
        if a.tool_calls:
            msg["tool_calls"] = [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in a.tool_calls
            ]
        lp = None
        if top is not None:
            lp = {
                "content": token_logprobs(split(a.text or "", chunks), top) if a.text else None,
                "refusal": None,
            }
        choices.append({"index": i, "message": msg, "logprobs": lp, "finish_reason": a.finish_reason})
    doc: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": choices,
        "service_tier": served_tier(body),
        "system_fingerprint": FINGERPRINT,
    }
    if usage is not None:
        doc["usage"] = usage
    return doc


def served_tier(body: dict[str, Any]) -> str:
    """The ``service_tier`` the API reports: the requested ``flex`` / ``priority``, else ``default``."""
    tier = body.get("service_tier")
    return tier if tier in ("flex", "priority", "scale") else "default"


def chunks(
    body: dict[str, Any], answers: list[Answer], usage: dict[str, Any] | None, pieces: int
) -> list[Paced]:
    """The stream's chunks in order. ``usage`` is sent (as the last chunk) only when the request asked."""
    include_usage = usage is not None and bool((body.get("stream_options") or {}).get("include_usage"))
    top = _logprobs_option(body)
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "service_tier": served_tier(body),
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(i: int, delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> dict[str, Any]:
        c = {**base, "choices": [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        return c

    out: list[Paced] = []
    per_choice: list[list[dict[str, Any]]] = []
    for i, a in enumerate(answers):
        if a.tool_calls:
            first = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "index": k,
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": ""},
                    }
                    for k, c in enumerate(a.tool_calls)
                ],
            }
            out.append((chunk(i, first), False))
            per_choice.append(
                [
                    chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
                    for k, c in enumerate(a.tool_calls)
                    for piece in split(c.arguments, pieces)
                ]
            )
        else:
            out.append(
                (
                    chunk(
                        i,
                        {"role": "assistant", "content": "", "refusal": None},
                        lp=None if top is None else {"content": [], "refusal": None},
                    ),
                    False,
                )
            )
            parts = split(a.text or "", pieces)
            per_choice.append(
                [
                    chunk(
                        i,
                        {"content": p},
                        lp=None if top is None else {"content": token_logprobs([p], top), "refusal": None},
                    )
                    for p in parts
                ]
            )
    longest = max((len(s) for s in per_choice), default=0)
    for k in range(longest):  # choices interleave, as the API sends them
        out.extend((s[k], True) for s in per_choice if k < len(s))
    out.extend((chunk(i, {}, a.finish_reason), False) for i, a in enumerate(answers))
    if include_usage:
        out.append(({**base, "choices": [], "usage": usage}, False))
    return out
