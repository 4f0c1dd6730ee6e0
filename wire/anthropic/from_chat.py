"""OpenAI Chat Completions said in the Messages API: an answer (a ``message``), its usage and stop reason, and —
the inverse of ``to_chat`` — a request.

Usage: Anthropic's ``input_tokens`` counts neither cache reads nor cache writes, so the prompt's cached tokens
(``prompt_tokens_details.cached_tokens``) become ``cache_read_input_tokens`` and the rest ``input_tokens``.
Stop reasons: ``stop`` is ``end_turn`` (or ``stop_sequence`` when vLLM names one of the request's stop
sequences as the choice's ``stop_reason``), ``length`` ``max_tokens``, ``tool_calls``/``function_call``
``tool_use``, ``content_filter`` ``refusal``. Reasoning text (vLLM's ``reasoning_content``) is not an answer
block: a translated request never asks for thinking. A tool call's ``arguments`` that are not a JSON object
are kept as they are (the string) in ``input``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id(chat_id: Any) -> str:
    s = chat_id if isinstance(chat_id, str) and chat_id else "translated"
    return s if s.startswith("msg_") else f"msg_{s}"


def stop_reason(choice: dict[str, Any], stop_sequences: Sequence[str]) -> tuple[str | None, str | None]:
    """(``stop_reason``, ``stop_sequence``) of a chat choice that finished (None, None while it has not)."""
    fr = choice.get("finish_reason")
    if not isinstance(fr, str) or not fr:
        return None, None
    matched = choice.get("stop_reason")
    if fr == "stop" and isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    return _STOP.get(fr, "end_turn"), None


def usage(u: Any) -> dict[str, int]:
    """Anthropic's ``usage`` for an OpenAI Chat ``usage`` object."""
    u = u if isinstance(u, dict) else {}
    prompt = _int(u.get("prompt_tokens"))
    details = u.get("prompt_tokens_details")
    cached = min(_int(details.get("cached_tokens")) if isinstance(details, dict) else 0, prompt)
    out = {"input_tokens": prompt - cached, "output_tokens": _int(u.get("completion_tokens"))}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def tool_input(arguments: Any) -> Any:
    """A tool call's ``input`` from its JSON ``arguments`` string (kept as given when not a JSON object)."""
    if not isinstance(arguments, str):
        return {}
    if not arguments.strip():
        return {}
    try:
        doc = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    return doc if isinstance(doc, dict) else arguments


def from_chat_completion(doc: dict[str, Any], stop_sequences: Sequence[str] = ()) -> dict[str, Any]:
    """The Messages API answer for a Chat Completions answer (its first choice)."""
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message")
    msg = msg if isinstance(msg, dict) else {}
    content: list[dict[str, Any]] = []
    text = _text(msg.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(fn, dict):
            content.append(
                {
                    "type": "tool_use",
                    "id": str(tc.get("id") or ""),
                    "name": str(fn.get("name") or ""),
                    "input": tool_input(fn.get("arguments")),
                }
            )
    reason, seq = stop_reason(choice, stop_sequences)
    if isinstance(refusal, str) and refusal:
        reason = "refusal"
    return {
        "id": message_id(doc.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(doc.get("model") or ""),
        "content": content,
        "stop_reason": reason or "end_turn",
        "stop_sequence": seq,
        "usage": usage(doc.get("usage")),
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


# -- the inverse of ``to_chat.to_chat_request`` ---------------------------------------------------------------
def from_chat_request(chat: dict[str, Any]) -> dict[str, Any]:
    """The Messages request a Chat Completions request (as ``to_chat`` writes them) says."""
    out: dict[str, Any] = {}
    for k in ("model", "temperature", "top_p", "top_k", "stream"):
        if k in chat:
            out[k] = chat[k]
    if "max_completion_tokens" in chat:
        out["max_tokens"] = chat["max_completion_tokens"]
    msgs: list[dict[str, Any]] = []
    for m in chat.get("messages") or ():
        role = m.get("role")
        if role == "system":
            out["system"] = m.get("content")
        elif role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.get("tool_call_id")}
            block["content"] = m.get("content")
            _append(msgs, "user", [block])
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            for tc in m.get("tool_calls") or ():
                fn = tc["function"]
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.get("id"),
                        "name": fn.get("name"),
                        "input": tool_input(fn.get("arguments")),
                    }
                )
            msgs.append({"role": "assistant", "content": blocks})
        else:
            content = m.get("content")
            if isinstance(content, str):
                msgs.append({"role": "user", "content": content})
            else:
                _append(msgs, "user", [_block(p) for p in content or ()])
    out["messages"] = msgs
    if chat.get("stop"):
        out["stop_sequences"] = list(chat["stop"])
    if chat.get("tools"):
        out["tools"] = [
            {
                k: v
                for k, v in (
                    ("name", t["function"].get("name")),
                    ("description", t["function"].get("description")),
                    ("input_schema", t["function"].get("parameters")),
                )
                if k != "description" or "description" in t["function"]
            }
            for t in chat["tools"]
        ]
    tc = chat.get("tool_choice")
    if tc is not None:
        kinds = {"auto": "auto", "required": "any", "none": "none"}
        choice: dict[str, Any] = (
            {"type": kinds[tc]} if isinstance(tc, str) else {"type": "tool", "name": tc["function"]["name"]}
        )
        if chat.get("parallel_tool_calls") is False:
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    md: dict[str, Any] = dict(chat.get("metadata") or {})
    if "user" in chat:
        md["user_id"] = chat["user"]
    if md:
        out["metadata"] = md
    return out


def _append(msgs: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Blocks of one user turn: ``to_chat`` split a turn into tool messages and a user message."""
    last = msgs[-1] if msgs else None
    if (
        last is not None
        and last["role"] == role
        and isinstance(last["content"], list)
        and _results_only(last)
    ):
        last["content"].extend(blocks)
    else:
        msgs.append({"role": role, "content": blocks})


def _results_only(m: dict[str, Any]) -> bool:
    return all(b.get("type") == "tool_result" for b in m["content"])


def _block(p: dict[str, Any]) -> dict[str, Any]:
    if p.get("type") == "image_url":
        url = str(p["image_url"]["url"])
        if url.startswith("data:") and ";base64," in url:
            media, data = url[5:].split(";base64,", 1)
            return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    if p.get("type") == "file":
        data = str(p["file"]["file_data"]).split(";base64,", 1)[1]
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": data},
        }
    return {"type": "text", "text": p.get("text")}
