"""A simulated answer in the OpenAI wire format: complete bodies and SSE events for chat, completions and the
Responses API, embeddings, and the ``usage`` block each endpoint reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from wire.endpoints import CHAT, COMPLETIONS, RESPONSES


def usage(endpoint: str, prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    if endpoint == RESPONSES:
        return {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        }
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
    }


def _message_item(rid: str, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{rid}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _response(
    rid: str, model: str, status: str, output: list[Any], use: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "usage": use,
    }


def complete(
    endpoint: str, rid: str, model: str, text: str, finish: str, use: dict[str, Any]
) -> dict[str, Any]:
    """The whole answer of a chat, completions or Responses API call."""
    created = int(time.time())
    if endpoint == RESPONSES:
        return _response(rid, model, "completed", [_message_item(rid, text)], use)
    if endpoint == COMPLETIONS:
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    else:
        msg = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}
        obj = "chat.completion"
    return {
        "id": f"cmpl-{rid}",
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": use,
    }


def embeddings(model: str, vectors: list[list[float]], use: dict[str, Any]) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": use}


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def stream(
    endpoint: str,
    rid: str,
    model: str,
    pieces: list[str],
    finish: str,
    use: dict[str, Any],
    include_usage: bool,
) -> Iterator[tuple[bytes, bool]]:
    """The stream's SSE events in order, each with whether it carries a generated token (paced by the caller)."""
    if endpoint == RESPONSES:
        yield from _responses_stream(rid, model, pieces, use)
        return
    created = int(time.time())
    obj = "text_completion" if endpoint == COMPLETIONS else "chat.completion.chunk"
    base = {"id": f"cmpl-{rid}", "object": obj, "created": created, "model": model}

    def choice(piece: str | None, finish_reason: str | None, first: bool = False) -> dict[str, Any]:
        if endpoint == COMPLETIONS:
            return {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish_reason}
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
        if piece is not None:
            delta["content"] = piece
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    if endpoint == CHAT:
        yield _event({**base, "choices": [choice(None, None, first=True)]}), False
    for piece in pieces:
        yield _event({**base, "choices": [choice(piece, None)]}), True
    yield _event({**base, "choices": [choice(None, finish)]}), False
    if include_usage:
        yield _event({**base, "choices": [], "usage": use}), False
    yield b"data: [DONE]\n\n", False


def _responses_stream(
    rid: str, model: str, pieces: list[str], use: dict[str, Any]
) -> Iterator[tuple[bytes, bool]]:
    seq = 0

    def ev(kind: str, **data: Any) -> bytes:
        nonlocal seq
        seq += 1
        return b"event: " + kind.encode() + b"\n" + _event({"type": kind, "sequence_number": seq - 1, **data})

    text = "".join(pieces)
    item = _message_item(rid, text)
    started = _response(rid, model, "in_progress", [], None)
    yield ev("response.created", response=started), False
    yield (
        ev(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        ),
        False,
    )
    part = {"type": "output_text", "text": "", "annotations": []}
    yield (
        ev("response.content_part.added", output_index=0, content_index=0, item_id=item["id"], part=part),
        False,
    )
    for piece in pieces:
        yield (
            ev(
                "response.output_text.delta", output_index=0, content_index=0, item_id=item["id"], delta=piece
            ),
            True,
        )
    yield (
        ev("response.output_text.done", output_index=0, content_index=0, item_id=item["id"], text=text),
        False,
    )
    done_part = {**part, "text": text}
    yield (
        ev("response.content_part.done", output_index=0, content_index=0, item_id=item["id"], part=done_part),
        False,
    )
    yield ev("response.output_item.done", output_index=0, item=item), False
    yield ev("response.completed", response=_response(rid, model, "completed", [item], use)), False
