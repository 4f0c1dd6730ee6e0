"""Token usage as reported by upstreams (chat/completions/embeddings ``usage`` and Responses API usage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    """Prompt tokens, including cached ones."""
    output_tokens: int = 0
    """Completion tokens, including reasoning ones."""
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    """True when counted by a tokenizer because the upstream reported nothing."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def parse_usage(u: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object in either the Chat (prompt/completion) or Responses (input/output) form."""
    if not isinstance(u, dict):
        return None
    if "prompt_tokens" in u or "completion_tokens" in u:
        inp = _int(u.get("prompt_tokens"))
        out = _int(u.get("completion_tokens"))
        pd = u.get("prompt_tokens_details")
        cd = u.get("completion_tokens_details")
    elif "input_tokens" in u or "output_tokens" in u:
        inp = _int(u.get("input_tokens"))
        out = _int(u.get("output_tokens"))
        pd = u.get("input_tokens_details")
        cd = u.get("output_tokens_details")
    else:
        return None
    cached = _int(pd.get("cached_tokens")) if isinstance(pd, dict) else 0
    reasoning = _int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0
    return Usage(inp, out, min(cached, inp), min(reasoning, out))


def usage_from_response(doc: Any) -> Usage | None:
    """Usage of a complete response body (or of a stream chunk / Responses API event)."""
    if not isinstance(doc, dict):
        return None
    u = parse_usage(doc.get("usage"))
    if u is None and isinstance(doc.get("response"), dict):  # Responses API: response.completed event
        u = parse_usage(doc["response"].get("usage"))
    return u
