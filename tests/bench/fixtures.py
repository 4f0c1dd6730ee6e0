"""Fixed request and upstream response bodies shared by every target."""

from __future__ import annotations

import json
from typing import Any

API_KEY = "sk-bench"  # what the load generator sends to the gateways
UPSTREAM_KEY = "sk-up"  # what the gateways send to nginx (ignored there)
CHAT_MODEL = "bench-model"
STREAM_MODEL = "bench-stream"
UPSTREAM_MODEL = "gpt-4o-mini"
CONTENT_CHUNKS = 17

_CREATED = 1767225600
_ID = "chatcmpl-bench0000000000000000000001"
_USAGE: dict[str, Any] = {
    "prompt_tokens": 23,
    "completion_tokens": CONTENT_CHUNKS,
    "total_tokens": 23 + CONTENT_CHUNKS,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
_WORDS = (
    "Hello there, this is a fixed benchmark answer that the fake upstream sends "
    "back for every request it gets today ok"
).split()[:CONTENT_CHUNKS]


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def request_body(*, stream: bool) -> bytes:
    """The POST /v1/chat/completions body the load generator sends."""
    body: dict[str, Any] = {
        "model": STREAM_MODEL if stream else CHAT_MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in a sentence of about seventeen words."},
        ],
        "max_tokens": 64,
        "temperature": 0,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _dumps(body).encode()


def request_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def completion_body() -> str:
    """A non-streaming OpenAI chat.completion object with usage."""
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion",
            "created": _CREATED,
            "model": f"{UPSTREAM_MODEL}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(_WORDS), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def _chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": f"{UPSTREAM_MODEL}-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def sse_body() -> str:
    """17 content chunks (the last with finish_reason), a usage chunk and ``data: [DONE]``."""
    events: list[dict[str, Any]] = []
    for i, word in enumerate(_WORDS):
        delta: dict[str, Any] = {"content": word if i == 0 else f" {word}"}
        if i == 0:
            delta["role"] = "assistant"
        events.append(_chunk(delta, "stop" if i == len(_WORDS) - 1 else None))
    usage = _chunk({}, None)
    usage["choices"] = []
    usage["usage"] = _USAGE
    events.append(usage)
    return "".join(f"data: {_dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
