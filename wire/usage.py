"""Token usage as reported by upstreams, every token class kept apart.

Read from an OpenAI ``usage`` object in the Chat/Completions/Embeddings form (``prompt_tokens`` /
``completion_tokens`` with ``prompt_tokens_details`` and ``completion_tokens_details``) or the Responses form
(``input_tokens`` / ``output_tokens`` with ``input_tokens_details`` / ``output_tokens_details``); vLLM reports the
Chat form. Anthropic's usage arrives through litellm in the Chat form too: ``prompt_tokens`` then counts cache
reads and cache writes, which litellm also reports as ``prompt_tokens_details.cached_tokens`` /
``cache_creation_tokens`` (with ``cache_creation_token_details.ephemeral_5m_input_tokens`` /
``ephemeral_1h_input_tokens``) and as the top-level ``cache_read_input_tokens`` / ``cache_creation_input_tokens``.
The response's ``service_tier`` (OpenAI: top level; Anthropic through litellm: in ``usage``) is read too.

Anthropic's own form (the Messages API, ``wire.anthropic``) is the Responses form's names with
``cache_read_input_tokens`` / ``cache_creation_input_tokens`` (and ``cache_creation``'s lifetimes) beside
``input_tokens``, which counts neither: they are added to make ``Usage.input_tokens`` the whole prompt.
"""

from __future__ import annotations

from typing import Any, Final

SERVICE_TIERS = ("standard", "flex", "priority", "balanced", "ultrafast", "batch")
"""Service tiers prices can differ by (bounded: anything else a response reports is ``standard``)."""
_TIER_NAMES = {
    "flex": "flex",
    "priority": "priority",
    "fast": "priority",
    "balanced": "balanced",
    "ultrafast": "ultrafast",
    "batch": "batch",
}


_USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "estimated",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "service_tier",
)
"""``Usage``'s attributes, its ``__slots__`` (named here: a compiled class keeps no ``__slots__`` to read)."""


class Usage:
    """Token counts of one answer, by class, as ``usage_from_response`` reads them from any provider's shape."""

    __slots__ = _USAGE_FIELDS

    input_tokens: int
    """Prompt tokens, all of them: cache reads, cache writes, audio and image tokens included."""
    output_tokens: int
    """Completion tokens, all of them: reasoning, audio and image tokens included."""
    cached_input_tokens: int
    """Of the input: read from the provider's prompt cache."""
    reasoning_tokens: int
    """Of the output: reasoning."""
    estimated: bool
    """True when counted by a tokenizer because the upstream reported nothing."""
    cache_write_tokens: int
    """Of the input: written to the prompt cache (every lifetime)."""
    cache_write_1h_tokens: int
    """Of the cache writes: to the one-hour cache (the rest are five-minute writes)."""
    audio_input_tokens: int
    audio_output_tokens: int
    image_input_tokens: int
    image_output_tokens: int
    service_tier: str
    """The tier the upstream says it served the request in (one of ``SERVICE_TIERS``)."""

    def __init__(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        estimated: bool = False,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        audio_input_tokens: int = 0,
        audio_output_tokens: int = 0,
        image_input_tokens: int = 0,
        image_output_tokens: int = 0,
        service_tier: str = "standard",
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens
        self.reasoning_tokens = reasoning_tokens
        self.estimated = estimated
        self.cache_write_tokens = cache_write_tokens
        self.cache_write_1h_tokens = cache_write_1h_tokens
        self.audio_input_tokens = audio_input_tokens
        self.audio_output_tokens = audio_output_tokens
        self.image_input_tokens = image_input_tokens
        self.image_output_tokens = image_output_tokens
        self.service_tier = service_tier

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def _key(self) -> tuple[int, int, int, int, bool, int, int, int, int, int, int, str]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.reasoning_tokens,
            self.estimated,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
            self.image_input_tokens,
            self.image_output_tokens,
            self.service_tier,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return self._key() == other._key()

    def __repr__(self) -> str:
        return (
            "Usage(" + ", ".join(f"{n}={v!r}" for n, v in zip(_USAGE_FIELDS, self._key(), strict=True)) + ")"
        )


def service_tier(v: Any) -> str:
    """A reported ``service_tier`` as one of ``SERVICE_TIERS`` (``default``, ``auto``, ``scale``: standard)."""
    return _TIER_NAMES.get(v.lower(), "standard") if isinstance(v, str) else "standard"


def _int(v: Any) -> int:
    if type(v) is int:  # (not bool, a subclass)
        return v if v >= 0 else 0
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _count(u: dict[str, Any], name: str) -> int | None:
    """A top-level token count: absent is 0; present, it must be a non-negative integer (else None: malformed)."""
    v = u.get(name, 0)
    return v if type(v) is int and v >= 0 else None


_EMPTY: dict[str, Any] = {}


def parse_usage(u: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object in either the Chat (prompt/completion) or Responses (input/output) form.
    None when there is none, or when its input or output count is not a non-negative integer (``"3"``, ``-5``,
    ``null``): a usage that cannot be read is no usage (the request is then estimated), never 0 tokens."""
    if not isinstance(u, dict):
        return None
    chat_form = "prompt_tokens" in u or "completion_tokens" in u
    if chat_form:
        inp_or_none, out_or_none = _count(u, "prompt_tokens"), _count(u, "completion_tokens")
        pd = u.get("prompt_tokens_details")
        cd = u.get("completion_tokens_details")
    elif "input_tokens" in u or "output_tokens" in u:
        inp_or_none, out_or_none = _count(u, "input_tokens"), _count(u, "output_tokens")
        pd = u.get("input_tokens_details")
        cd = u.get("output_tokens_details")
    else:
        return None
    if inp_or_none is None or out_or_none is None:
        return None
    inp, out = inp_or_none, out_or_none
    if (
        not chat_form
        and pd is None
        and ("cache_read_input_tokens" in u or "cache_creation_input_tokens" in u)
    ):
        inp += _int(u.get("cache_read_input_tokens")) + _int(u.get("cache_creation_input_tokens"))
    pd = pd if isinstance(pd, dict) else _EMPTY
    cd = cd if isinstance(cd, dict) else _EMPTY
    cached = _int(pd.get("cached_tokens")) or _int(u.get("cache_read_input_tokens"))
    writes = (
        _int(pd.get("cache_creation_tokens"))
        or _int(pd.get("cache_write_tokens"))
        or _int(u.get("cache_creation_input_tokens"))
    )
    ttl = pd.get("cache_creation_token_details") or u.get("cache_creation")  # litellm's name, Anthropic's
    writes_1h = 0
    if isinstance(ttl, dict):
        writes_1h = _int(ttl.get("ephemeral_1h_input_tokens"))
        writes = max(writes, writes_1h + _int(ttl.get("ephemeral_5m_input_tokens")))
    cached = min(cached, inp)
    writes = min(writes, inp - cached)
    usage = Usage(inp, out, cached, min(_int(cd.get("reasoning_tokens")), out))
    if writes:
        usage.cache_write_tokens = writes
        usage.cache_write_1h_tokens = min(writes_1h, writes)
    a_in, i_in, a_out, i_out = (
        _int(pd.get("audio_tokens")),
        _int(pd.get("image_tokens")),
        _int(cd.get("audio_tokens")),
        _int(cd.get("image_tokens")),
    )
    if a_in or i_in or a_out or i_out:
        usage.audio_input_tokens, usage.image_input_tokens = min(a_in, inp), min(i_in, inp)
        usage.audio_output_tokens, usage.image_output_tokens = min(a_out, out), min(i_out, out)
    tier = u.get("service_tier")
    if tier is not None:
        usage.service_tier = service_tier(tier)
    return usage


def usage_from_response(doc: Any) -> Usage | None:
    """Usage of a complete response body (or of a stream chunk / Responses API event), with the response's
    ``service_tier``."""
    if not isinstance(doc, dict):
        return None
    u = parse_usage(doc.get("usage"))
    tier = doc.get("service_tier")
    if u is None and isinstance(doc.get("response"), dict):  # Responses API: response.completed event
        u = parse_usage(doc["response"].get("usage"))
        tier = doc["response"].get("service_tier")
    if u is not None and tier is not None and u.service_tier == "standard":
        u.service_tier = service_tier(tier)
    if u is not None and doc.get("type") == "message":
        return reported_messages_usage(u)
    return u


def reported_messages_usage(u: Usage | None) -> Usage | None:
    """A Messages API usage, or None when it counts no token at all: every message has input tokens, and a
    message translated from an upstream that reported no usage says zeros (the clients require the object)."""
    return u if u is not None and u.total_tokens else None


def merge_messages_usage(so_far: dict[str, Any] | None, doc: Any) -> dict[str, Any] | None:
    """The usage of a Messages API stream after event ``doc``: ``message_start`` carries the message's usage, each
    ``message_delta`` cumulative totals that replace what they name (None: the event carries none)."""
    if not isinstance(doc, dict):
        return None
    kind = doc.get("type")
    if kind == "message_start":
        m = doc.get("message")
        u = m.get("usage") if isinstance(m, dict) else None
        return dict(u) if isinstance(u, dict) else None
    if kind == "message_delta":
        u = doc.get("usage")
        if isinstance(u, dict):
            return {**(so_far or {}), **{k: v for k, v in u.items() if v is not None}}
    return None
