"""Responses API objects as the OpenAI API sends them: the ``response`` object and its streamed events.

Shapes follow the API's published schema (``Response``, ``ResponseStreamEvent``): ``response.created`` and
``response.in_progress``, then per output item ``response.output_item.added`` … ``response.output_item.done``
(text: content part added, ``output_text`` deltas, text done, part done; function calls: argument deltas and
``response.function_call_arguments.done``), then ``response.completed``. Every event carries
``sequence_number``, counting from 0.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.openai_answers import Answer
from tests.fakes.openai_chat import Paced, split, token_logprobs


def _suffix(rid: str) -> str:
    """What the ids of a response's items share (the API's item ids are unique; these are too)."""
    return rid.removeprefix("resp_")


def usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _text_part(text: str, pieces: int, top: int | None) -> dict[str, Any]:
    lp = token_logprobs(split(text, pieces), top) if top is not None else []
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": lp}


def _logprobs_option(body: dict[str, Any]) -> int | None:
    include = body.get("include")
    if isinstance(include, list) and "message.output_text.logprobs" in include:
        top = body.get("top_logprobs")
        return top if isinstance(top, int) and top >= 0 else 0
    return None


def output_items(body: dict[str, Any], answer: Answer, pieces: int, rid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.text is not None:
        items.append(
            {
                "id": f"msg_{_suffix(rid)}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [_text_part(answer.text, pieces, _logprobs_option(body))],
            }
        )
    for k, c in enumerate(answer.tool_calls):
        items.append(
            {
                "id": f"fc_{_suffix(rid)}{k:04d}",
                "type": "function_call",
                "status": "completed",
                "call_id": c.call_id,
                "name": c.name,
                "arguments": c.arguments,
            }
        )
    return items


def response(
    body: dict[str, Any],
    answer: Answer,
    use: dict[str, Any] | None,
    pieces: int,
    status: str = "completed",
    rid: str = "resp_fake0001",
) -> dict[str, Any]:
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", ""),
        "output": output_items(body, answer, pieces, rid) if status == "completed" else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        **conversation_of(body),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": use if status == "completed" else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def events(
    body: dict[str, Any], answer: Answer, use: dict[str, Any] | None, pieces: int, rid: str = "resp_fake0001"
) -> list[Paced]:
    """The stream's events in order, each with its ``sequence_number``."""
    out: list[Paced] = []

    def ev(kind: str, paced: bool = False, **data: Any) -> None:
        out.append(({"type": kind, "sequence_number": len(out), **data}, paced))

    started = response(body, answer, None, pieces, status="in_progress", rid=rid)
    ev("response.created", response=started)
    ev("response.in_progress", response=started)
    for index, item in enumerate(output_items(body, answer, pieces, rid)):
        if item["type"] == "message":
            part = item["content"][0]
            ev(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            ev(
                "response.content_part.added",
                output_index=index,
                content_index=0,
                item_id=item["id"],
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
            lps = part["logprobs"]
            for i, piece in enumerate(split(part["text"], pieces)):
                ev(
                    "response.output_text.delta",
                    True,
                    output_index=index,
                    content_index=0,
                    item_id=item["id"],
                    delta=piece,
                    logprobs=lps[i : i + 1],
                )
            ev(
                "response.output_text.done",
                output_index=index,
                content_index=0,
                item_id=item["id"],
                text=part["text"],
                logprobs=lps,
            )
            ev(
                "response.content_part.done",
                output_index=index,
                content_index=0,
                item_id=item["id"],
                part=part,
            )
        else:
            ev(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in split(item["arguments"], pieces):
                ev(
                    "response.function_call_arguments.delta",
                    True,
                    output_index=index,
                    item_id=item["id"],
                    delta=piece,
                )
            ev(
                "response.function_call_arguments.done",
                output_index=index,
                item_id=item["id"],
                name=item["name"],
                arguments=item["arguments"],
            )
        ev("response.output_item.done", output_index=index, item=item)
    ev("response.completed", response=response(body, answer, use, pieces, rid=rid))
    return out


def input_items(body: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    """The request's input as the API lists it (``/input_items``): each message with an id (of its own), a string
    as one user message."""
    given = body.get("input")
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
    items = []
    for k, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content or []
        role = m.get("role", "user") if isinstance(m, dict) else "user"
        items.append(
            {
                "id": f"msg_in{_suffix(rid)}{k:04d}",
                "type": "message",
                "role": role,
                "status": "completed",
                "content": parts,
            }
        )
    return items


def conversation_of(body: dict[str, Any]) -> dict[str, Any]:
    """The response's ``conversation`` (``{"id": ...}``) when the request named one (its id, or the object)."""
    c = body.get("conversation")
    if isinstance(c, dict):
        c = c.get("id")
    return {"conversation": {"id": c}} if isinstance(c, str) and c else {}
